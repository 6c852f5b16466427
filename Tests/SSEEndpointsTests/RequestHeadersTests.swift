import Testing

@testable import SSEEndpoints

@Suite("Request headers")
struct RequestHeadersTests {
    let headers = RequestHeaders([
        (name: "Host", value: "localhost"), (name: "ORIGIN", value: "https://a.example"),
        (name: "Cookie", value: "a=1, b=2"), (name: "cookie", value: " c=3 "), (name: "Expect", value: " 100-Continue\t"),
        (name: "Set-Cookie", value: "x=1, y=2"), (name: "X-Empty", value: " , ,"),
    ])

    @Test("names match without regard to ASCII case; first is the whole first value")
    func lookups() {
        #expect(headers.first(name: "host") == "localhost")
        #expect(headers.first(name: "Origin") == "https://a.example")
        #expect(headers.first(name: "cookie") == "a=1, b=2")
        #expect(headers.contains(name: "x-empty"))
        #expect(!headers.contains(name: "x-emptyy"))
        #expect(headers.first(name: "hos") == nil)
    }

    @Test("canonical form splits on commas and trims blanks, as SwiftNIO's; Set-Cookie is never split")
    func canonicalForm() {
        #expect(headers[canonicalForm: "cookie"] == ["a=1", "b=2", "c=3"])
        #expect(headers[canonicalForm: "expect"] == ["100-Continue"])
        #expect(headers[canonicalForm: "set-cookie"] == ["x=1, y=2"])
        #expect(headers[canonicalForm: "x-empty"] == ["", ""])
        #expect(headers[canonicalForm: "missing"].isEmpty)
    }

    @Test("Expect: 100-continue and Content-Length as a request declares them")
    func declared() {
        let request = BrokerRequest(method: .POST, target: "/publish", headers: headers, peer: nil)
        #expect(request.expectsContinue)
        #expect(request.declaredContentLength == nil)
        let long = BrokerRequest(method: .POST, target: "/publish", headers: RequestHeaders([(name: "content-length", value: "99999999999999999999")]), peer: nil)
        #expect(long.declaredContentLength == Int.max)
    }
}
