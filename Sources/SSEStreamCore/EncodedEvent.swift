import NIOCore
import SSEWire

/// An event's bytes, encoded once per node and shared by every client that receives it.
///
/// The bytes are stored already framed as one HTTP/1.1 chunk (`SIZE\r\nTEXT\r\n`), so the
/// same buffer goes to every chunked client with no per-client framing or allocation; HTTP/1.0
/// clients get a slice of the same storage without the framing.
package struct EncodedEvent: Sendable {
    /// The event framed as one chunk, for HTTP/1.1 clients.
    package let chunked: ByteBuffer
    /// The event text alone, for close-delimited (HTTP/1.0) clients.
    package let raw: ByteBuffer
    /// The event's place in history, when it has one: clients use it to drop duplicates
    /// between a replay and live traffic.
    package let position: HistoryPosition?
    /// The channel the event was published on, where the node knew it (live and replayed
    /// events): with positions per channel, a position means something only on its channel.
    package let channel: ChannelName?
    /// Where the `id:` line's value sits in `raw` (offsets from its reader index), when the event
    /// has an id: a multi-channel stream with positions per channel writes its own id there.
    private let idValue: Range<Int>?

    /// When the publisher stamped the event (Unix milliseconds in a numeric `publishedAt` of an
    /// object `data`), for the publish-to-write delay metric.
    package let publishedAtMilliseconds: Double?

    /// Encodes an event once for all clients.
    package init(_ event: ServerSentEvent, allocator: ByteBufferAllocator) {
        self.init(text: EventTextEncoder.encode(event), position: event.historyPosition, allocator: allocator)
    }

    /// Decodes a Redis payload (Flask-SSE's, or plain text) and encodes it once for all clients.
    /// Its id counts as a history position only when `trust` accepts it: positions decide what
    /// clients drop as duplicates, so only ids Redis vouches for may be positions.
    package init(redisPayload: [UInt8], allocator: ByteBufferAllocator, trust: (HistoryPosition) -> Bool = { _ in true }) {
        let decoded = Self.decode(redisPayload: redisPayload)
        let position = decoded.event.historyPosition.flatMap { trust($0) ? $0 : nil }
        self.init(decoded.event, position: position, publishedAt: decoded.publishedAt, allocator: allocator)
    }

    /// Encodes a decoded event with the position it was given (nil: delivered as is, never
    /// deduplicated and never moving a client's position).
    package init(_ event: ServerSentEvent, position: HistoryPosition?, channel: ChannelName? = nil, publishedAt: Double? = nil, allocator: ByteBufferAllocator) {
        let text = EventTextEncoder.encode(event)
        // `EventTextEncoder` writes `id:ID` last but for `retry:R`, then the blank line.
        let idValue = event.id.map { id -> Range<Int> in
            let end = text.count - 2 - (event.retry.map { 7 + $0.utf8.count } ?? 0)
            return (end - id.utf8.count)..<end
        }
        self.init(text: text, position: position, channel: channel, idValue: idValue, publishedAt: publishedAt, allocator: allocator)
    }

    /// The event for a Redis payload, parsed once, and its plausible `publishedAt` stamp.
    package static func decode(redisPayload: [UInt8]) -> (event: ServerSentEvent, publishedAt: Double?) {
        guard let message = FlaskSSEMessage(redisPayload: redisPayload) else {
            // Not Flask-SSE's shape: plain text, as `ServerSentEvent(redisPayload:)` renders it,
            // without parsing the payload a second time.
            return (ServerSentEvent(data: String(decoding: redisPayload, as: UTF8.self)), nil)
        }
        var stamp: Double?
        if case .object(let data) = message.data {
            switch data["publishedAt"] {
            case .integer(let value)?: stamp = Double(value.digits)
            case .float(let value)?: stamp = value
            default: break
            }
        }
        return (message.event, stamp.flatMap(Self.plausibleStamp))
    }

    /// A publisher's `publishedAt` is anyone's number: only a finite, positive stamp before the
    /// year 5000 (in Unix milliseconds) is observed; anything else (`1e300`, `-Infinity`, `-1`)
    /// is simply not measured.
    package static func plausibleStamp(_ milliseconds: Double) -> Double? {
        milliseconds.isFinite && milliseconds > 0 && milliseconds < 95_617_584_000_000 ? milliseconds : nil
    }

    package init(text: some Collection<UInt8>, position: HistoryPosition? = nil, publishedAt: Double? = nil, allocator: ByteBufferAllocator) {
        self.init(text: text, position: position, channel: nil, idValue: nil, publishedAt: publishedAt, allocator: allocator)
    }

    private init(text: some Collection<UInt8>, position: HistoryPosition?, channel: ChannelName?, idValue: Range<Int>?, publishedAt: Double?, allocator: ByteBufferAllocator) {
        self.position = position
        self.channel = channel
        self.idValue = idValue.flatMap { $0.lowerBound >= 0 && $0.upperBound <= text.count ? $0 : nil }
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
    package func bytes(chunked isChunked: Bool) -> ByteBuffer {
        isChunked ? chunked : raw
    }

    /// The event with `id` in place of its own id (one copy, for one stream), framed as
    /// `bytes(chunked:)`; the event as it is when it has no id.
    package func bytes(chunked isChunked: Bool, id: String) -> ByteBuffer {
        guard let idValue, let before = raw.getSlice(at: raw.readerIndex, length: idValue.lowerBound),
            let after = raw.getSlice(at: raw.readerIndex + idValue.upperBound, length: raw.readableBytes - idValue.upperBound)
        else { return bytes(chunked: isChunked) }
        let length = before.readableBytes + id.utf8.count + after.readableBytes
        let header = String(length, radix: 16) + "\r\n"
        var buffer = ByteBufferAllocator().buffer(capacity: length + (isChunked ? header.utf8.count + 2 : 0))
        if isChunked { buffer.writeString(header) }
        buffer.writeImmutableBuffer(before)
        buffer.writeString(id)
        buffer.writeImmutableBuffer(after)
        if isChunked { buffer.writeStaticString("\r\n") }
        return buffer
    }
}
