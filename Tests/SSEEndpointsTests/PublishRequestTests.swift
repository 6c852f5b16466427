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

    @Test("an array is a batch, in order; a single object stays a single event")
    func batch() throws {
        #expect(try PublishRequest.body(from: Array(#"{"data": 1}"#.utf8)) == .single(FlaskSSEMessage(data: 1)))
        let body = try PublishRequest.body(from: Array(#"[{"data": 1}, {"data": "b", "type": "t"}]"#.utf8))
        #expect(body == .batch([FlaskSSEMessage(data: 1), FlaskSSEMessage(data: "b", type: "t")]))
    }

    @Test(
        "a batch with any bad element, empty, or past 1000 events is refused whole, saying which element",
        arguments: [
            (#"[{"data": 1}, {"nodata": 1}]"#, "batch element 1: body has no \"data\" field"),
            (#"[{"data": 1}, {"data": 2}, "text"]"#, "batch element 2: body must be a JSON object"),
            (#"[{"data": 1, "typo": 1}]"#, "batch element 0: unknown field"),
            ("[]", "empty array"),
            ("[" + Array(repeating: #"{"data":1}"#, count: 1001).joined(separator: ",") + "]", "1001 events; at most 1000"),
            (#"[{"data": 1}"#, "not valid JSON"),
        ]
    )
    func batchRefused(_ body: String, _ reason: String) {
        do {
            _ = try PublishRequest.body(from: Array(body.utf8))
            Issue.record("accepted \(body)")
        } catch {
            #expect(error.status == .badRequest)
            #expect(error.message.contains(reason), "\(error.message)")
        }
    }
}
