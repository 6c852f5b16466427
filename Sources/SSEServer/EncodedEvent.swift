import NIOCore
import SSEWire

/// An event's bytes, encoded once per node and shared by every client that receives it.
///
/// The bytes are stored already framed as one HTTP/1.1 chunk (`SIZE\r\nTEXT\r\n`), so the
/// same buffer goes to every chunked client with no per-client framing or allocation; HTTP/1.0
/// clients get a slice of the same storage without the framing.
struct EncodedEvent: Sendable {
    /// The event framed as one chunk, for HTTP/1.1 clients.
    let chunked: ByteBuffer
    /// The event text alone, for close-delimited (HTTP/1.0) clients.
    let raw: ByteBuffer
    /// The event's place in history, when it has one: clients use it to drop duplicates
    /// between a replay and live traffic.
    let position: HistoryPosition?

    /// When the publisher stamped the event (Unix milliseconds in a numeric `publishedAt` of an
    /// object `data`), for the publish-to-write delay metric.
    let publishedAtMilliseconds: Double?

    /// Encodes an event once for all clients.
    init(_ event: ServerSentEvent, allocator: ByteBufferAllocator) {
        self.init(text: EventTextEncoder.encode(event), position: event.historyPosition, allocator: allocator)
    }

    /// Decodes a Redis payload (Flask-SSE's, or plain text) and encodes it once for all clients.
    init(redisPayload: [UInt8], allocator: ByteBufferAllocator) {
        guard let message = FlaskSSEMessage(redisPayload: redisPayload) else {
            self.init(ServerSentEvent(redisPayload: redisPayload), allocator: allocator)
            return
        }
        var stamp: Double?
        if case .object(let data) = message.data {
            switch data["publishedAt"] {
            case .integer(let value)?: stamp = Double(value.digits)
            case .float(let value)?: stamp = value
            default: break
            }
        }
        stamp = stamp.flatMap(Self.plausibleStamp)
        let event = message.event
        self.init(text: EventTextEncoder.encode(event), position: event.historyPosition, publishedAt: stamp, allocator: allocator)
    }

    /// A publisher's `publishedAt` is anyone's number: only a finite, positive stamp before the
    /// year 5000 (in Unix milliseconds) is observed; anything else (`1e300`, `-Infinity`, `-1`)
    /// is simply not measured.
    static func plausibleStamp(_ milliseconds: Double) -> Double? {
        milliseconds.isFinite && milliseconds > 0 && milliseconds < 95_617_584_000_000 ? milliseconds : nil
    }

    init(text: some Collection<UInt8>, position: HistoryPosition? = nil, publishedAt: Double? = nil, allocator: ByteBufferAllocator) {
        self.position = position
        self.publishedAtMilliseconds = publishedAt
        let header = String(text.count, radix: 16) + "\r\n"
        var buffer = allocator.buffer(capacity: header.utf8.count + text.count + 2)
        buffer.writeString(header)
        buffer.writeBytes(text)
        buffer.writeStaticString("\r\n")
        self.chunked = buffer
        self.raw = buffer.getSlice(at: buffer.readerIndex + header.utf8.count, length: text.count) ?? buffer
    }

    /// The bytes for a client, by how it frames its body.
    @inline(__always)
    func bytes(chunked isChunked: Bool) -> ByteBuffer {
        isChunked ? chunked : raw
    }
}
