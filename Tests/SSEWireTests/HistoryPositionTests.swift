import SSEWire
import Testing

@Suite("History positions and id splicing")
struct HistoryPositionTests {
    @Test("parses EPOCH-SEQUENCE only", arguments: [
        ("1795243966158-42", HistoryPosition(epoch: 1795243966158, sequence: 42)),
        ("0-0", HistoryPosition(epoch: 0, sequence: 0)),
    ])
    func parses(_ text: String, _ expected: HistoryPosition) {
        #expect(HistoryPosition(text) == expected)
        #expect(HistoryPosition(text)?.description == text)
    }

    @Test("anything else is not a position", arguments: ["", "42", "-1", "1-", "a-1", "1-2-3", "1 -2", "+1-2", "99999999999999999999-1", "１-２"])
    func rejects(_ text: String) {
        #expect(HistoryPosition(text) == nil)
    }

    @Test("positions order by epoch, then sequence")
    func order() {
        #expect(HistoryPosition(epoch: 1, sequence: 99) < HistoryPosition(epoch: 2, sequence: 1))
        #expect(HistoryPosition(epoch: 2, sequence: 1) < HistoryPosition(epoch: 2, sequence: 10))
    }

    @Test("splicing an id between head and tail gives exactly sse.publish's bytes with that id", arguments: [
        FlaskSSEMessage(data: "x"),
        FlaskSSEMessage(data: ["b": 1, "a": "é"], type: "t", retry: 5),
        FlaskSSEMessage(data: [1, 2], retry: 0),
        FlaskSSEMessage(data: nil, type: "only-type"),
    ])
    func splice(_ message: FlaskSSEMessage) {
        let (head, tail) = message.payloadAroundID
        #expect(head + tail == message.redisPayload)
        var withID = message
        withID.id = "1-2"
        #expect(head + Array(#", "id": "1-2""#.utf8) + tail == withID.redisPayload)
    }

    @Test("an event's position comes from an id of the broker's form only")
    func eventPosition() {
        #expect(ServerSentEvent(redisPayload: Array(#"{"data": 1, "id": "5-6"}"#.utf8)).historyPosition == HistoryPosition(epoch: 5, sequence: 6))
        #expect(ServerSentEvent(redisPayload: Array(#"{"data": 1, "id": 7}"#.utf8)).historyPosition == nil)
        #expect(ServerSentEvent(redisPayload: Array("plain".utf8)).historyPosition == nil)
    }
}
