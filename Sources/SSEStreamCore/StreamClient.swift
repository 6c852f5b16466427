import NIOCore
import SSEWire

/// One open stream, whichever host carries it: its channels and resume point, its place in
/// the hub, its delivery decisions (``StreamDeliveryStateMachine``), carried out on its
/// ``StreamSink``. Used only on its event loop.
///
/// The hub and its loop registries deliver to streams through this type only; the sink is the
/// host's: ``StreamConnectionHandler`` writes pre-framed chunks straight to a NIO channel, a
/// ``BoundedStreamSink`` hands the bytes to a host framework's response body.
package final class StreamClient: HeartbeatRingMember, StreamSinkOwner {
    /// The channels this stream receives.
    package let channels: [ChannelName]
    /// The position this stream resumes after (`Last-Event-ID`), as the client sent it.
    package let resumeFrom: String?
    package let eventLoop: any EventLoop
    private let hub: StreamHub
    private let opening: ByteBuffer
    /// When the stream's token expires (Unix seconds); the stream ends then.
    private let expiresAt: Double?
    private var machine: StreamDeliveryStateMachine
    /// Until the stream has ended; let go of then, so sink and stream do not keep each other.
    private var sink: (any StreamSink)?
    private var isRegistered = false
    /// Run once each when the sink becomes writable again: replays waiting to send their next
    /// page (with positions per channel one stream may be in several at once).
    private var onWritable: [() -> Void] = []
    /// While the stream's start read is out (`.freshStart`): what waits for it (a catch-up needs
    /// where the stream started). Nil when no start read is out.
    private var awaitingStart: [() -> Void]?
    private var expiry: Scheduled<Void>?
    /// This stream's place in its loop's heartbeat ring.
    package var ringSlot = -1

    /// - Parameters:
    ///   - opening: the bytes that open the stream (written first, at `start`).
    ///   - isChunked: the stream's bytes are HTTP/1.1 chunks.
    package init(
        channels: [ChannelName],
        resumeFrom: String?,
        expiresAt: Double?,
        opening: ByteBuffer,
        isChunked: Bool,
        clientBufferBytes: Int,
        hub: StreamHub,
        sink: any StreamSink,
        eventLoop: any EventLoop
    ) {
        self.channels = channels
        self.resumeFrom = resumeFrom
        self.expiresAt = expiresAt
        self.opening = opening
        self.hub = hub
        self.sink = sink
        self.eventLoop = eventLoop
        // With positions per channel, a stream of several channels carries one per channel.
        let vector = hub.positionsPerChannel && Set(channels).count > 1 ? ChannelPositions(channels: channels) : nil
        self.machine = StreamDeliveryStateMachine(isChunked: isChunked, clientBufferBytes: clientBufferBytes, channelPositions: vector)
    }

    /// Writes the opening bytes and joins the hub (a resume gets its replay first); `isActive`
    /// false (the client already left) writes nothing more.
    package func start(isActive: Bool = true) {
        sink?.writeAndFlush(opening)
        guard isActive, machine.isOpen else { return }
        isRegistered = true
        hub.register(self, on: eventLoop)
        if expiresAt != nil { scheduleExpiry() }
    }

    // MARK: Delivery (from the hub, the registry and replays)

    /// The newest history position written to this client (or that it already had).
    package var lastDelivered: HistoryPosition? { machine.lastDelivered }

    /// With positions per channel and several channels: where the client stands on each.
    package var channelPositions: ChannelPositions? { machine.channelPositions }

    /// Whether the stream is still open and taking events.
    package var isOpen: Bool { machine.isOpen }

    /// Whether a replay may send this client its next page now.
    package var canTakeReplayPage: Bool { machine.canTakeReplayPage }

    /// The delivery state (tests).
    package var phase: StreamDeliveryStateMachine.Phase { machine.phase }

    /// Queues a live event; returns true when this client now needs a flush.
    package func enqueue(_ event: EncodedEvent) -> Bool {
        perform(machine.liveEvent(event, backlog: self.backlog))
    }

    /// Queues a channel's batch; with `flushNow` it is flushed at once too. Returns true when
    /// this client still needs a flush.
    package func enqueue(_ batch: ChannelBatch, flushNow: Bool = false) -> Bool {
        perform(machine.liveBatch(batch, flushNow: flushNow, backlog: self.backlog))
    }

    /// Queues a heartbeat comment; returns true when this client now needs a flush.
    package func enqueueHeartbeat(_ heartbeat: EncodedEvent) -> Bool {
        perform(machine.heartbeat(heartbeat, backlog: self.backlog))
    }

    /// Flushes what `enqueue` queued.
    package func flushPending() {
        machine.flushed()
        sink?.flush()
    }

    /// Starts holding live events until `completeReplay`; events at or before `position` count
    /// as delivered.
    package func beginReplay(after position: HistoryPosition?) {
        machine.beginReplay(after: position)
    }

    /// Treats events at or before `position` as already delivered.
    package func raisePosition(to position: HistoryPosition) {
        machine.raisePosition(to: position)
    }

    /// Sets where this client stands exactly.
    package func resetPosition(to position: HistoryPosition?) {
        machine.resetPosition(to: position)
    }

    /// Sets where this client stands on `channel`: with positions per channel, in its vector
    /// (several channels) or as its one position.
    package func resetPosition(to position: HistoryPosition?, on channel: ChannelName) {
        if machine.channelPositions != nil {
            machine.resetPosition(to: position, on: channel)
        } else {
            machine.resetPosition(to: position)
        }
    }

    /// Treats events of `channel` at or before `position` as delivered (positions per channel).
    package func raisePosition(to position: HistoryPosition, on channel: ChannelName) {
        if machine.channelPositions != nil {
            machine.raisePosition(to: position, on: channel)
        } else {
            machine.raisePosition(to: position)
        }
    }

    /// A new stream's start on `channel`, read after it was registered (see
    /// `StreamDeliveryStateMachine.startTentatively(at:on:)`).
    package func startTentatively(at position: HistoryPosition, on channel: ChannelName) {
        machine.startTentatively(at: position, on: channel)
    }

    /// Where the client stands on `channel`, if it has a position there.
    package func position(on channel: ChannelName) -> HistoryPosition? {
        machine.channelPositions.map { $0.position(of: channel) } ?? machine.lastDelivered
    }

    /// Runs `action` once the client has taken what it was sent (at once if it has).
    package func whenWritable(_ action: @escaping () -> Void) {
        if machine.canTakeReplayPage {
            action()
        } else {
            onWritable.append(action)
        }
    }

    /// Writes a replay page: the gap notice first, then the events this client does not have.
    package func deliverReplay(_ events: [EncodedEvent], gap: EncodedEvent?) {
        _ = perform(machine.replayPage(events, gap: gap, backlog: self.backlog))
    }

    /// Ends one replay; once none is pending, writes the held live events.
    package func completeReplay() {
        _ = perform(machine.completeReplay(backlog: self.backlog))
    }

    /// Writes a whole replay at once and ends it.
    package func completeReplay(_ events: [EncodedEvent], gap: EncodedEvent?) {
        deliverReplay(events, gap: gap)
        completeReplay()
    }

    /// Cuts this client off as too slow: a replay waited too long for it to take a page.
    package func cutOffAsSlow() {
        _ = perform(machine.replayStalled(backlog: backlog))
    }

    /// Writes `event` (neither held nor deduplicated: it is the stream's last word), then ends.
    package func finish(after event: EncodedEvent) {
        _ = perform(machine.finish(after: event))
    }

    /// Ends the stream cleanly (the terminating chunk for HTTP/1.1), then closes, so an
    /// EventSource reconnects, through the load balancer, to another node.
    package func finish() {
        _ = perform(machine.finish())
    }

    // MARK: StreamSinkOwner

    package func sinkWritabilityChanged(isWritable: Bool) {
        machine.writabilityChanged(isWritable: isWritable)
        if isWritable, !onWritable.isEmpty {
            let waiting = onWritable
            onWritable = []
            for action in waiting { action() }
        }
    }

    /// Lets go of what the open stream held, once its sink is closed.
    package func sinkClosed() {
        machine.closed()
        sink = nil
        unregister()
        expiry?.cancel()
        expiry = nil
        onWritable = []
        awaitingStart = nil
    }

    /// Whether the stream's start read (`.freshStart`) is still out.
    package var isAwaitingStart: Bool { awaitingStart != nil }

    /// The stream's start read went out.
    package func beginAwaitingStart() {
        if awaitingStart == nil { awaitingStart = [] }
    }

    /// Runs `action` once the stream's start is known (at once when no start read is out).
    package func afterStart(_ action: @escaping () -> Void) {
        guard awaitingStart != nil else {
            action()
            return
        }
        awaitingStart?.append(action)
    }

    /// The start read ended (answered, failed or past its limit): what waited for it runs.
    package func startKnown() {
        let waiting = awaitingStart ?? []
        awaitingStart = nil
        for action in waiting { action() }
    }

    // MARK: Carrying out actions

    private var backlog: Int { sink?.unreadBytes ?? 0 }

    /// Carries out `action`; true when the stream now needs a flush.
    @inline(__always)
    private func perform(_ action: StreamDeliveryStateMachine.Action) -> Bool {
        switch action {
        case .none:
            return false
        case .write(let bytes, let touched):
            sink?.write(bytes)
            return touched
        case .writeAndFlush(let bytes):
            sink?.writeAndFlush(bytes)
            return false
        case .writeAll(let writes, let touched):
            guard let sink else { return false }
            for bytes in writes { sink.write(bytes) }
            return touched
        case .writeAllAndFlush(let writes):
            guard let sink else { return false }
            for bytes in writes { sink.write(bytes) }
            sink.flush()
            return false
        case .cutOff(let backlog):
            unregister()
            hub.noteSlowClientCutOff(backlog: backlog)
            sink?.abort()
            return false
        case .finish(let last):
            unregister()
            expiry?.cancel()
            sink?.end(after: last)
            return false
        }
    }

    private func unregister() {
        guard isRegistered else { return }
        isRegistered = false
        hub.unregister(self, on: eventLoop)
    }

    /// Ends the stream when its token expires; the client must come back with a fresh one. A
    /// far-off expiry (some issuers use the year 9999 for "never") is checked again every day
    /// rather than turned into a delay that does not fit in a `TimeAmount`.
    private func scheduleExpiry() {
        guard let expiresAt else { return }
        let remaining = expiresAt - WallClock.seconds()
        guard remaining > 0 else {
            finish()
            return
        }
        let day = 86_400.0
        let delay = remaining.isFinite ? min(remaining, day) : day
        expiry = eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) { [weak self] in
            self?.scheduleExpiry()
        }
    }
}
