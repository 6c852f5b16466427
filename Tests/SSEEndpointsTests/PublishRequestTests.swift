import SSEWire
import Testing

@testable import SSEEndpoints

@Suite("POST /publish bodies")
struct PublishRequestTests {
    @Test("the fields map onto sse.publish's arguments")
    func fields() throws {
        let message = try PublishRequest.message(from: Array(#"{"data": {"a": 1}, "type": "t", "id": 7, "retry": 100}"#.utf8))
        #expect(message == FlaskSSEMessage(data: ["a": 1], type: "t", id: 7, retry: 100))
    }

    @Test("refused with 400", arguments: ["", "nope", "[]", "{}", #"{"data": 1, "typo": 2}"#, "{\"data\": \"\u{1}\"}"])
    func refused(_ body: String) {
        #expect(throws: HTTPError.self) { try PublishRequest.message(from: Array(body.utf8)) }
        #expect((try? PublishRequest.message(from: Array(body.utf8))) == nil)
    }
}
