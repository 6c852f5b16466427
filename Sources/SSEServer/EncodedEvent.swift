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

    /// Encodes an event once for all clients.
    init(_ event: ServerSentEvent, allocator: ByteBufferAllocator) {
        self.init(text: EventTextEncoder.encode(event), position: event.historyPosition, allocator: allocator)
    }

    init(text: some Collection<UInt8>, position: HistoryPosition? = nil, allocator: ByteBufferAllocator) {
        self.position = position
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
