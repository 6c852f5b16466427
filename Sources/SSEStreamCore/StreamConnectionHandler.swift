import NIOCore
import SSEWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A connection after it became an event stream: the HTTP handlers are gone, only this remains.
///
/// It writes the node's shared preamble once, then the shared pre-framed bytes of each event.
/// It keeps no request state, so an idle stream costs little. Input from the client is
/// discarded (an EventSource sends nothing after its request), but reading continues so a
/// disconnect is noticed at once. A client whose unsent backlog passes `--client-buffer` when
/// the next event arrives is cut off: it can never slow the others or grow the server's memory.
///
/// An event that is written and flushed at once (the last delivery queued on the loop: at
/// ordinary rates, every one) goes straight to the socket with one `send` while SwiftNIO holds
/// nothing unsent for this client, the usual case for a client that keeps up: it skips the
/// channel's write machinery, the larger part of a write's cost. Deliveries that pile up while
/// the loop is busy are queued on the channel and leave together in one `writev` at the flush.
/// Whatever the kernel does not take, and everything after it until SwiftNIO has sent it, goes
/// through the channel as before, so order, backpressure and the `--client-buffer` cut-off are
/// unchanged.
///
/// While a history replay is pending (a resume, or catching up after Redis came back), live
/// events are held, bounded by the same buffer; the replay is written first, page by page as
/// the client takes it, then the held events. Every event with a history position at or
/// before the last one this client got is dropped, so replay and live traffic meet with no gap
/// and no duplicate. Heartbeats are never held: they keep flowing while a replay is pending.
package final class StreamConnectionHandler: ChannelInboundHandler, RemovableChannelHandler, HeartbeatRingMember {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    /// The channels this stream receives.
    package let channels: [ChannelName]
    /// The position this stream resumes after (`Last-Event-ID`), as the client sent it.
    package let resumeFrom: String?
    private let isChunked: Bool
    private let preamble: ByteBuffer
    /// When the stream's token expires (Unix seconds); the stream ends then.
    private let expiresAt: Double?
    private let hub: StreamHub
    private let clientBufferBytes: Int
    /// The connection's socket while the channel is open, for direct writes.
    private var socket: Int32?
    /// SwiftNIO may hold unsent bytes for this client: direct writes wait until it does not.
    private var nioMayHoldBytes = true
    private var context: ChannelHandlerContext?
    private var options: NIOSynchronousChannelOptions?
    /// Mirrors the channel's writability: its high-water mark is `--client-buffer`, so while it
    /// is writable the client is certainly within its buffer and no exact count is needed.
    private var isWritable = true
    private var isRegistered = false
    private var hasPendingWrites = false
    /// Bytes written but not flushed yet: they are queued by design (one flush per loop turn),
    /// so they do not count against the client's buffer.
    private var unflushedBytes = 0
    private var isFinishing = false
    /// The newest history position written to this client (or that it already had).
    private(set) var lastDelivered: HistoryPosition?
    private var pendingReplays = 0
    /// Run once when the channel becomes writable again: a replay waiting to send its next page.
    private var onWritable: (() -> Void)?
    private var held: [EncodedEvent] = []
    private var heldBytes = 0
    /// The check that ends the stream when its token expires.
    private var expiry: Scheduled<Void>?
    /// This stream's place in its loop's heartbeat ring.
    package var ringSlot = -1

    package init(
        channels: [ChannelName],
        resumeFrom: String?,
        isChunked: Bool,
        preamble: ByteBuffer,
        expiresAt: Double?,
        hub: StreamHub,
        clientBufferBytes: Int,
        socket: Int32
    ) {
        self.channels = channels
        self.resumeFrom = resumeFrom
        self.isChunked = isChunked
        self.preamble = preamble
        self.expiresAt = expiresAt
        self.hub = hub
        self.clientBufferBytes = clientBufferBytes
        self.socket = socket
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.options = context.channel.syncOptions
        let high = max(1, clientBufferBytes)
        try? options?.setOption(.writeBufferWaterMark, value: .init(low: max(1, high / 2), high: high))
        isWritable = context.channel.isWritable
        context.writeAndFlush(wrapOutboundOut(preamble), promise: nil)
        guard context.channel.isActive else { return }
        isRegistered = true
        hub.register(self, on: context.eventLoop)
        if expiresAt != nil { scheduleExpiry(on: context.eventLoop) }
    }

    /// Ends the stream when its token expires; the client must come back with a fresh one. A
    /// far-off expiry (some issuers use the year 9999 for "never") is checked again every day
    /// rather than turned into a delay that does not fit in a `TimeAmount`.
    private func scheduleExpiry(on loop: any EventLoop) {
        guard let expiresAt else { return }
        let remaining = expiresAt - WallClock.seconds()
        guard remaining > 0 else {
            finish()
            return
        }
        let day = 86_400.0
        let delay = remaining.isFinite ? min(remaining, day) : day
        expiry = loop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) { [weak self] in
            self?.scheduleExpiry(on: loop)
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        release()
        self.context = nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Discarded on purpose, whatever its type: requests pipelined behind a stream are never
        // answered, because the stream never ends.
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        if isWritable, let waiting = onWritable {
            onWritable = nil
            waiting()
        }
        context.fireChannelWritabilityChanged()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    /// Lets go of what the open stream held, once the connection is closed.
    private func release() {
        // SwiftNIO has closed the descriptor; its number may soon belong to another connection.
        socket = nil
        unregister()
        expiry?.cancel()
        expiry = nil
        held = []
        heldBytes = 0
        onWritable = nil
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            finish()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Queues a heartbeat comment, even while a replay is pending (a comment may sit between any
    /// two events); returns true when this client now needs a flush. A client past its buffer
    /// is cut off here as at any write.
    package func enqueueHeartbeat(_ heartbeat: EncodedEvent) -> Bool {
        guard let context, !isFinishing, hasRoom(context) else { return false }
        queue(heartbeat.bytes(chunked: isChunked), context: context)
        defer { hasPendingWrites = true }
        return !hasPendingWrites
    }

    /// Queues a live event; returns true when this client now needs a flush.
    package func enqueue(_ event: EncodedEvent) -> Bool {
        guard context != nil, !isFinishing else { return false }
        if pendingReplays > 0 {
            held.append(event)
            heldBytes += event.chunked.readableBytes
            if heldBytes > clientBufferBytes, let context { cutOff(context: context, backlog: heldBytes) }
            return false
        }
        return deliver(event)
    }

    /// Queues a channel's batch from one read: one write when the client is live and has none of
    /// it yet, else event by event. With `flushNow` (the last delivery queued on the loop) the
    /// client is flushed at once too, so the first clients' bytes leave while the loop is still
    /// writing to the rest. Returns true when this client still needs a flush.
    package func enqueue(_ batch: ChannelBatch, flushNow: Bool = false) -> Bool {
        guard let context, !isFinishing else { return false }
        let overlaps = lastDelivered.map { last in batch.firstPosition.map { $0 <= last } ?? false } ?? false
        if pendingReplays > 0 || overlaps {
            var needsFlush = false
            for event in batch.events where enqueue(event) { needsFlush = true }
            if flushNow && needsFlush { flushPending(); return false }
            return needsFlush
        }
        guard hasRoom(context) else { return false }
        if let last = batch.lastPosition { lastDelivered = last }
        let bytes = batch.bytes(chunked: isChunked)
        if flushNow {
            if let rest = writeDirectly(bytes) {
                queue(rest, context: context)
                flushPending()
            }
            return false
        }
        queue(bytes, context: context)
        defer { hasPendingWrites = true }
        return !hasPendingWrites
    }

    /// Writes an event unless the client already has it; returns true when it needs a flush.
    private func deliver(_ event: EncodedEvent) -> Bool {
        guard let context, !isFinishing else { return false }
        if let position = event.position {
            if let lastDelivered, position <= lastDelivered { return false }
            lastDelivered = position
        }
        guard hasRoom(context) else { return false }
        queue(event.bytes(chunked: isChunked), context: context)
        defer { hasPendingWrites = true }
        return !hasPendingWrites
    }

    /// Whether the client keeps up: what it was sent (flushed) but has not taken yet is within
    /// `--client-buffer`. A client past it is cut off.
    private func hasRoom(_ context: ChannelHandlerContext) -> Bool {
        // Writable means at most `clientBufferBytes` are buffered, flushed or not: room for sure.
        if isWritable { return true }
        guard let backlog = try? options?.getOption(.bufferedWritableBytes) else { return true }
        let unread = backlog - unflushedBytes
        guard unread > clientBufferBytes else { return true }
        cutOff(context: context, backlog: unread)
        return false
    }

    /// Queues `bytes` on the channel, to leave at the next flush (with whatever else piles up
    /// before it, in one `writev`).
    private func queue(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        unflushedBytes += bytes.readableBytes
        nioMayHoldBytes = true
        context.write(wrapOutboundOut(bytes), promise: nil)
    }

    /// Sends `bytes` straight to the socket if SwiftNIO holds nothing unsent for this client;
    /// returns what is left for the channel to send after it (all of it when nothing went out:
    /// no direct write now, a full socket buffer, or an error the channel's own write meets and
    /// handles by closing), nil when the kernel took everything.
    private func writeDirectly(_ bytes: ByteBuffer) -> ByteBuffer? {
        guard let socket, nioHoldsNothing() else { return bytes }
        let sent = bytes.withUnsafeReadableBytes { pointer in
            send(socket, pointer.baseAddress, pointer.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        }
        guard sent < bytes.readableBytes else { return nil }
        var rest = bytes
        rest.moveReaderIndex(forwardBy: max(0, sent))
        return rest
    }

    /// Whether SwiftNIO has sent everything it was given for this client (asked only after the
    /// channel was used, so a client that keeps up never pays for the question).
    private func nioHoldsNothing() -> Bool {
        guard nioMayHoldBytes else { return true }
        guard !hasPendingWrites, (try? options?.getOption(.bufferedWritableBytes)) == 0 else { return false }
        nioMayHoldBytes = false
        return true
    }

    /// Flushes what `enqueue` queued.
    package func flushPending() {
        markFlushed()
        context?.flush()
    }

    private func markFlushed() {
        hasPendingWrites = false
        unflushedBytes = 0
    }

    /// Whether the stream is still open and taking events.
    package var isOpen: Bool { context != nil && !isFinishing }

    /// Whether a replay may send this client its next page now: it took what it was sent (its
    /// channel is writable), or it is gone.
    package var canTakeReplayPage: Bool { isWritable || !isOpen }

    /// Starts holding live events until `completeReplay`; events at or before `position` are
    /// treated as already delivered.
    package func beginReplay(after position: HistoryPosition?) {
        pendingReplays += 1
        if let position { raisePosition(to: position) }
    }

    /// Treats events at or before `position` as already delivered.
    package func raisePosition(to position: HistoryPosition) {
        if lastDelivered.map({ $0 < position }) ?? true { lastDelivered = position }
    }

    /// Sets where this client stands exactly: for a resume, once it is known which ids Redis
    /// vouches for. An id the broker never issued must not hold back later events, and an id
    /// past the counter must not make the client drop what the counter issues next.
    package func resetPosition(to position: HistoryPosition?) {
        lastDelivered = position
    }

    /// Runs `action` once the client has taken what it was sent (at once if it has).
    package func whenWritable(_ action: @escaping () -> Void) {
        if canTakeReplayPage {
            action()
        } else {
            onWritable = action
        }
    }

    /// Writes a replay page: the gap notice first, then the events this client does not have.
    package func deliverReplay(_ events: [EncodedEvent], gap: EncodedEvent?) {
        guard pendingReplays > 0 else { return }
        if let gap { _ = deliver(gap) }
        for event in events { _ = deliver(event) }
        flushPending()
    }

    /// Ends one replay; once none is pending, writes the held live events.
    package func completeReplay() {
        guard pendingReplays > 0 else { return }
        pendingReplays -= 1
        if pendingReplays == 0 {
            let release = held
            held = []
            heldBytes = 0
            for event in release { _ = deliver(event) }
        }
        flushPending()
    }

    /// Writes a whole replay at once and ends it.
    package func completeReplay(_ events: [EncodedEvent], gap: EncodedEvent?) {
        deliverReplay(events, gap: gap)
        completeReplay()
    }

    /// Cuts this client off as too slow: a replay waited too long for it to take a page.
    package func cutOffAsSlow() {
        guard let context, !isFinishing else { return }
        let backlog = (try? options?.getOption(.bufferedWritableBytes)) ?? 0
        cutOff(context: context, backlog: backlog)
    }

    private func cutOff(context: ChannelHandlerContext, backlog: Int) {
        isFinishing = true
        unregister()
        hub.noteSlowClientCutOff(backlog: backlog)
        context.close(promise: nil)
    }

    /// Writes `event` (held and deduplicated like nothing else: it is the stream's last word),
    /// then ends the stream.
    package func finish(after event: EncodedEvent) {
        guard let context, !isFinishing else { return }
        queue(event.bytes(chunked: isChunked), context: context)
        finish()
    }

    /// Ends the stream cleanly (the terminating chunk for HTTP/1.1), then closes, so an
    /// EventSource reconnects, through the load balancer, to another node.
    package func finish() {
        guard let context, !isFinishing else { return }
        isFinishing = true
        unregister()
        let end = isChunked ? ByteBuffer(staticString: "0\r\n\r\n") : ByteBuffer()
        context.writeAndFlush(wrapOutboundOut(end)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private func unregister() {
        guard isRegistered, let context else { return }
        isRegistered = false
        hub.unregister(self, on: context.eventLoop)
    }
}
