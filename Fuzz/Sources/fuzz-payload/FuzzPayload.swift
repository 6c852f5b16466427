import FuzzSupport
import NIOCore
@testable import SSEStreamCore
import SSEWire

/// The path a Redis message takes: `FlaskSSEMessage` / `ServerSentEvent(redisPayload:)`, the
/// event-text encoder, and the server's once-per-node `EncodedEvent`. Beyond "no trap": the text
/// is one well-formed event with the decoded fields, the chunk framing's length is the text's,
/// and a conforming payload re-encoded by `redisPayload` renders the same event.
@main
enum FuzzPayload {
    static func main() { FuzzDriver.run { data, count in fuzzPayload(data, count) } }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPayload(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let payload = FuzzCheck.bytes(data, count)
    let event = ServerSentEvent(redisPayload: payload)
    let text = EventTextEncoder.encode(event)
    EventTextCheck.check(text, renders: event)

    let encoded = EncodedEvent(redisPayload: payload, allocator: ByteBufferAllocator())
    FuzzCheck.require(Array(buffer: encoded.raw) == text, "EncodedEvent's text differs from EventTextEncoder's")
    let chunk = Array(buffer: encoded.chunked)
    let header = Array(String(text.count, radix: 16).utf8) + [13, 10]
    FuzzCheck.require(chunk == header + text + [13, 10], "chunk framing does not match the text's length")
    FuzzCheck.require(encoded.position == event.historyPosition, "position differs from the event id's")
    if let stamp = encoded.publishedAtMilliseconds {
        FuzzCheck.require(!stamp.isNaN, "publishedAt is NaN")
    }

    if let message = FlaskSSEMessage(redisPayload: payload) {
        FuzzCheck.require(EventTextEncoder.encode(message.event) == text, "the message's event differs from the payload's")
        // What our publisher writes for the same arguments must render the same event.
        let republished = message.redisPayload
        guard let again = FlaskSSEMessage(redisPayload: republished) else {
            FuzzCheck.require(false, "redisPayload of a conforming message does not conform: \(FuzzCheck.describe(republished))")
            return 0
        }
        FuzzCheck.require(EventTextEncoder.encode(again.event) == text, "re-published payload renders another event: \(FuzzCheck.describe(republished))")
        FuzzCheck.require(again.redisPayload == republished, "redisPayload is not idempotent")
        let (head, tail) = message.payloadAroundID
        FuzzCheck.require(FlaskSSEMessage(data: message.data, type: message.type, retry: message.retry).redisPayload == head + tail, "payloadAroundID without an id differs")
    } else {
        FuzzCheck.require(Array(event.data.utf8) == Array(String(decoding: payload, as: UTF8.self).utf8) && event.type == nil && event.id == nil && event.retry == nil, "a non-conforming payload is not plain text")
    }
    return 0
}
