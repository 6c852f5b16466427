import FlaskSSEVectors
import SSEWire
import Testing

@Suite("Flask-SSE golden vectors")
struct FlaskSSEVectorTests {
    static let vectors = (try? FlaskSSEVector.all()) ?? []

    @Test("the vector files load and are not empty")
    func vectorsLoad() throws {
        let vectors = try FlaskSSEVector.all()
        #expect(vectors.count >= 26)
        #expect(vectors.contains { $0.publish != nil })
        #expect(vectors.contains { $0.publish == nil })
    }

    @Test("Redis payload renders as Flask-SSE's event text", arguments: vectors)
    func payloadToEventText(_ vector: FlaskSSEVector) {
        let text = EventTextEncoder.encode(ServerSentEvent(redisPayload: vector.redisPayload))
        #expect(String(decoding: text, as: UTF8.self) == String(decoding: vector.sse, as: UTF8.self))
        #expect(text == vector.sse)
    }

    @Test("publish arguments make Flask-SSE's payload bytes", arguments: vectors.filter { $0.publish != nil })
    func publishToPayload(_ vector: FlaskSSEVector) throws {
        let publish = try #require(vector.publish)
        let data = try #require(publish["data"])
        let message = FlaskSSEMessage(data: data, type: publish["type"], id: publish["id"], retry: publish["retry"])
        #expect(String(decoding: message.redisPayload, as: UTF8.self) == String(decoding: vector.redisPayload, as: UTF8.self))
        #expect(message.redisPayload == vector.redisPayload)
    }
}
