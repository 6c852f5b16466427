import NIOCore
import SSEWire

/// The events of one channel from one read of the Redis subscription, encoded once and joined
/// into one buffer, so a client that keeps up gets the whole burst in one write (one syscall
/// at flush) instead of one write per event.
package struct ChannelBatch: Sendable {
    package let channel: ChannelName
    /// The events, in order, for clients that need them one by one (replaying, or with a
    /// history position that overlaps the batch).
    package let events: [EncodedEvent]
    /// All events framed as consecutive HTTP/1.1 chunks.
    package let chunked: ByteBuffer
    /// All events' text, for close-delimited (HTTP/1.0) clients.
    package let raw: ByteBuffer
    /// The first and newest history positions in the batch, if any event has one.
    package let firstPosition: HistoryPosition?
    package let lastPosition: HistoryPosition?

    package init(channel: ChannelName, events: [EncodedEvent], allocator: ByteBufferAllocator) {
        self.channel = channel
        self.events = events
        if events.count == 1, let only = events.first {
            chunked = only.chunked
            raw = only.raw
        } else {
            var chunked = allocator.buffer(capacity: events.reduce(0) { $0 + $1.chunked.readableBytes })
            var raw = allocator.buffer(capacity: events.reduce(0) { $0 + $1.raw.readableBytes })
            for event in events {
                chunked.writeImmutableBuffer(event.chunked)
                raw.writeImmutableBuffer(event.raw)
            }
            self.chunked = chunked
            self.raw = raw
        }
        let positions = events.compactMap(\.position)
        firstPosition = positions.first
        lastPosition = positions.max()
    }

    package func bytes(chunked isChunked: Bool) -> ByteBuffer {
        isChunked ? chunked : raw
    }
}

/// What one event loop gets from one read of the subscription: per-channel batches for
/// single-channel streams, and every event in order for multi-channel streams.
package struct LoopDelivery: Sendable {
    package var batches: [ChannelBatch] = []
    package var ordered: [RoutedEvent] = []
}
