import NIOCore
import SSEWire

/// What one stream is sent, and when: every decision of a stream's delivery, with no I/O.
///
/// A stream is `live` (events are written as they come), `replaying` (a history replay is
/// pending: live events are held, bounded by the client buffer, and written after the replay),
/// `finishing` (its last bytes are on their way) or `closed`. Every event with a history
/// position at or before the last one this client got is dropped, so replay and live traffic
/// meet with no gap and no duplicate. Heartbeats are never held.
///
/// A client keeps up while its sink is writable (its high-water mark is the client buffer, so
/// no exact count is needed then); once it is not, the bytes it was sent but has not taken
/// (`backlog`, read only then) must stay within the buffer, or it is cut off: it can never slow
/// the others or grow the node's memory.
///
/// Each input returns the ``Action`` its caller (``StreamClient``) carries out on the sink.
package struct StreamDeliveryStateMachine {
    /// Where the stream is in its life.
    package enum Phase: Equatable, Sendable {
        case live
        /// `pending` replays are running; live events are held until the last completes.
        case replaying(pending: Int)
        case finishing
        case closed
    }

    /// What the caller does next.
    package enum Action {
        case none
        /// Queue `bytes` on the sink. `touched`: the stream had nothing queued before, so the
        /// caller owes it one flush (at the end of the batch, or of the loop turn).
        case write(ByteBuffer, touched: Bool)
        /// Write and flush `bytes` at once, by the sink's fastest path.
        case writeAndFlush(ByteBuffer)
        /// Queue each of `bytes`, in order; `touched` as for `write`.
        case writeAll([ByteBuffer], touched: Bool)
        /// Queue each of `bytes` (possibly none), then flush.
        case writeAllAndFlush([ByteBuffer])
        /// Close at once: the client is too slow (`backlog` bytes were waiting for it).
        case cutOff(backlog: Int)
        /// End cleanly: `last` (the stream's last word and, for chunked streams, the
        /// terminating chunk), then close.
        case finish(last: ByteBuffer?)
    }

    package private(set) var phase: Phase = .live
    /// The newest history position written to this client (or that it already had).
    package private(set) var lastDelivered: HistoryPosition?
    /// With positions per channel (a multi-channel stream on a Redis Cluster's per-channel
    /// history), where the client stands on each channel instead of `lastDelivered`: an event is
    /// a duplicate by its own channel's position, and each event with a position is written with
    /// the whole vector as its id, so one `Last-Event-ID` resumes every channel.
    package private(set) var channelPositions: ChannelPositions?
    /// Mirrors the sink's writability.
    package private(set) var isWritable = true
    /// Bytes were queued since the last flush.
    package private(set) var hasPendingWrites = false
    private var held: [EncodedEvent] = []
    private var heldBytes = 0
    /// `lastDelivered` is a tentative start (``startTentatively(at:on:)``), not a delivery.
    private var lastDeliveredIsTentative = false
    /// Channels whose position in `channelPositions` is a tentative start.
    private var tentativeChannels: Set<ChannelName> = []
    private let isChunked: Bool
    private let clientBufferBytes: Int
    /// The backlog the last heartbeat found past the buffer during a replay (see `heartbeat`).
    private var replayBacklogAtHeartbeat: Int?

    /// - Parameters:
    ///   - isChunked: the stream's bytes are HTTP/1.1 chunks (the standalone node's HTTP/1.1
    ///     streams); otherwise the event text alone (HTTP/1.0, or a host that frames it).
    ///   - clientBufferBytes: what may wait for the client before it is cut off.
    ///   - channelPositions: where a multi-channel stream with positions per channel starts.
    package init(isChunked: Bool, clientBufferBytes: Int, channelPositions: ChannelPositions? = nil) {
        self.isChunked = isChunked
        self.clientBufferBytes = max(1, clientBufferBytes)
        self.channelPositions = channelPositions
    }

    /// Whether the stream is open and taking events.
    package var isOpen: Bool {
        switch phase {
        case .live, .replaying: true
        case .finishing, .closed: false
        }
    }

    /// Whether a replay may send the next page now: the client took what it was sent, or is gone.
    package var canTakeReplayPage: Bool { isWritable || !isOpen }

    /// Bytes of live events held while a replay is pending.
    package var heldByteCount: Int { heldBytes }

    // MARK: Live traffic

    /// A live event (multi-channel streams take events one by one, in publish order).
    package mutating func liveEvent(_ event: EncodedEvent, backlog: @autoclosure () -> Int) -> Action {
        switch phase {
        case .finishing, .closed:
            return .none
        case .replaying:
            held.append(event)
            heldBytes += event.chunked.readableBytes
            return heldBytes > clientBufferBytes ? cutOff(backlog: heldBytes) : .none
        case .live:
            return deliver(event, backlog: backlog())
        }
    }

    /// A channel's batch from one read of the subscription: one write when the stream is live
    /// and has none of it yet, else event by event. With `flushNow` (the last delivery queued on
    /// the loop) the bytes are written and flushed at once.
    package mutating func liveBatch(_ batch: ChannelBatch, flushNow: Bool, backlog: @autoclosure () -> Int) -> Action {
        guard isOpen else { return .none }
        let overlaps = lastDelivered.map { last in batch.firstPosition.map { $0 <= last } ?? false } ?? false
        if phase != .live || overlaps || channelPositions != nil {
            return eventByEvent(batch.events, flushNow: flushNow, backlog: backlog())
        }
        if let over = overBudget(backlog: backlog()) { return cutOff(backlog: over) }
        if let last = batch.lastPosition {
            lastDelivered = last
            lastDeliveredIsTentative = false
        }
        let bytes = batch.bytes(chunked: isChunked)
        if flushNow {
            hasPendingWrites = false
            return .writeAndFlush(bytes)
        }
        return queue(bytes)
    }

    /// A heartbeat comment: written even while a replay is pending (a comment may sit between
    /// any two events), never deduplicated.
    ///
    /// While a replay is pending, the backlog is mostly a replay page, taken only while the
    /// client was writable and owed by design: a client past its buffer then is cut off only
    /// if it took nothing since the previous heartbeat (its backlog did not shrink), and gets
    /// no heartbeat on top meanwhile. A client that reads, however slowly, is not cut off for a
    /// page in flight; one that stopped is, within two heartbeats.
    package mutating func heartbeat(_ heartbeat: EncodedEvent, backlog: @autoclosure () -> Int) -> Action {
        guard isOpen else { return .none }
        if let over = overBudget(backlog: backlog()) {
            guard case .replaying = phase else { return cutOff(backlog: over) }
            defer { replayBacklogAtHeartbeat = over }
            if let previous = replayBacklogAtHeartbeat, over >= previous { return cutOff(backlog: over) }
            return .none
        }
        replayBacklogAtHeartbeat = nil
        return queue(heartbeat.bytes(chunked: isChunked))
    }

    /// The caller flushed the sink.
    package mutating func flushed() {
        hasPendingWrites = false
    }

    /// The sink became writable or not.
    package mutating func writabilityChanged(isWritable: Bool) {
        self.isWritable = isWritable
    }

    // MARK: Replay

    /// Starts holding live events until ``completeReplay(backlog:)``; events at or before
    /// `position` count as delivered.
    package mutating func beginReplay(after position: HistoryPosition?) {
        switch phase {
        case .live: phase = .replaying(pending: 1)
        case .replaying(let pending): phase = .replaying(pending: pending + 1)
        case .finishing, .closed: return
        }
        if let position { raisePosition(to: position) }
    }

    /// Events at or before `position` count as delivered.
    package mutating func raisePosition(to position: HistoryPosition) {
        if lastDelivered.map({ $0 < position }) ?? true {
            lastDelivered = position
            lastDeliveredIsTentative = false
        }
    }

    /// Sets exactly where the client stands (a resume, once Redis said which ids it vouches for).
    package mutating func resetPosition(to position: HistoryPosition?) {
        lastDelivered = position
        lastDeliveredIsTentative = false
    }

    /// Sets exactly where the client stands on `channel` (positions per channel).
    package mutating func resetPosition(to position: HistoryPosition?, on channel: ChannelName) {
        channelPositions?.set(position, for: channel)
        if !tentativeChannels.isEmpty { tentativeChannels.remove(channel) }
    }

    /// A new stream's start on `channel` (on its one position when `channelPositions` is nil),
    /// read from the channel's counter after the stream was registered: where the stream's id
    /// stands on the channel until it gets an event there, but no proof of delivery. The read
    /// may have run after events that reach this stream live (published once it was subscribed,
    /// held or still on their way), so the channel's first event with a position is written
    /// even at or before it, and then stands as a delivery. Only raises: a position the stream
    /// already has stays.
    package mutating func startTentatively(at position: HistoryPosition, on channel: ChannelName) {
        if channelPositions != nil {
            guard channelPositions?.position(of: channel) == nil else { return }
            channelPositions?.set(position, for: channel)
            tentativeChannels.insert(channel)
        } else {
            guard lastDelivered == nil else { return }
            lastDelivered = position
            lastDeliveredIsTentative = true
        }
    }

    /// Events of `channel` at or before `position` count as delivered (positions per channel).
    package mutating func raisePosition(to position: HistoryPosition, on channel: ChannelName) {
        if channelPositions?.position(of: channel).map({ $0 < position }) ?? true {
            channelPositions?.set(position, for: channel)
            if !tentativeChannels.isEmpty { tentativeChannels.remove(channel) }
        }
    }

    /// A replay page: the gap notice first, then the events the client does not have; flushed.
    package mutating func replayPage(_ events: [EncodedEvent], gap: EncodedEvent?, backlog: @autoclosure () -> Int) -> Action {
        guard case .replaying = phase else { return .none }
        var writes: [ByteBuffer] = []
        writes.reserveCapacity(events.count + 1)
        if let gap, let cut = append(gap, to: &writes, live: false, backlog: backlog()) { return cut }
        for event in events {
            if let cut = append(event, to: &writes, live: false, backlog: backlog()) { return cut }
        }
        hasPendingWrites = false
        return .writeAllAndFlush(writes)
    }

    /// Ends one replay; once none is pending, the held live events are written; flushed.
    package mutating func completeReplay(backlog: @autoclosure () -> Int) -> Action {
        guard case .replaying(let pending) = phase else { return .none }
        var writes: [ByteBuffer] = []
        if pending > 1 {
            phase = .replaying(pending: pending - 1)
        } else {
            phase = .live
            let release = held
            held = []
            heldBytes = 0
            writes.reserveCapacity(release.count)
            for event in release {
                if let cut = append(event, to: &writes, backlog: backlog()) { return cut }
            }
        }
        hasPendingWrites = false
        return .writeAllAndFlush(writes)
    }

    /// A replay waited too long for the client to take a page.
    package mutating func replayStalled(backlog: Int) -> Action {
        guard isOpen else { return .none }
        return cutOff(backlog: backlog)
    }

    // MARK: Ending

    /// Ends the stream cleanly (quiesce, token expiry, a refused channel), after `event` when
    /// given: neither held nor deduplicated, it is the stream's last word.
    package mutating func finish(after event: EncodedEvent? = nil) -> Action {
        guard isOpen else { return .none }
        phase = .finishing
        dropHeld()
        let end: ByteBuffer? = isChunked ? ByteBuffer(staticString: "0\r\n\r\n") : nil
        guard let event else { return .finish(last: end) }
        var last = event.bytes(chunked: isChunked)
        if var end { last.writeBuffer(&end) }
        return .finish(last: last)
    }

    /// The sink closed (the client went away, or the stream ended).
    package mutating func closed() {
        phase = .closed
        dropHeld()
    }

    // MARK: Helpers

    private mutating func eventByEvent(_ events: [EncodedEvent], flushNow: Bool, backlog: @autoclosure () -> Int) -> Action {
        if phase != .live {
            for event in events {
                let action = liveEvent(event, backlog: backlog())
                if case .cutOff = action { return action }
            }
            return .none
        }
        var writes: [ByteBuffer] = []
        for event in events {
            if let cut = append(event, to: &writes, backlog: backlog()) { return cut }
        }
        guard !writes.isEmpty else { return .none }
        if flushNow {
            hasPendingWrites = false
            return .writeAllAndFlush(writes)
        }
        return queue(writes)
    }

    /// Adds `event`'s bytes to `writes` unless the client already has it; the cut-off if the
    /// client is past its buffer.
    private mutating func append(_ event: EncodedEvent, to writes: inout [ByteBuffer], live: Bool = true, backlog: @autoclosure () -> Int) -> Action? {
        guard let bytes = admit(event, live: live) else { return nil }
        if let over = overBudget(backlog: backlog()) { return cutOff(backlog: over) }
        writes.append(bytes)
        return nil
    }

    private mutating func deliver(_ event: EncodedEvent, backlog: @autoclosure () -> Int) -> Action {
        guard let bytes = admit(event, live: true) else { return .none }
        if let over = overBudget(backlog: backlog()) { return cutOff(backlog: over) }
        return queue(bytes)
    }

    /// The bytes to write for `event`, nil when the client already has it (its position is at
    /// or before the client's, on its channel with positions per channel). A tentative start
    /// lets a `live` event at or before it through (it reached the stream after it opened); a
    /// replayed one is judged by it as by any position.
    @inline(__always)
    private mutating func admit(_ event: EncodedEvent, live: Bool) -> ByteBuffer? {
        guard let position = event.position else { return event.bytes(chunked: isChunked) }
        guard channelPositions != nil else {
            if let lastDelivered, position <= lastDelivered, !(live && lastDeliveredIsTentative) { return nil }
            lastDelivered = position
            lastDeliveredIsTentative = false
            return event.bytes(chunked: isChunked)
        }
        // A position without its channel cannot be placed: written as it is, deduplicated by nothing.
        guard let channel = event.channel else { return event.bytes(chunked: isChunked) }
        if let last = channelPositions?.position(of: channel), position <= last {
            // (A live event against a tentative start is the only case that writes it.)
            guard live, !tentativeChannels.isEmpty, tentativeChannels.remove(channel) != nil else { return nil }
        } else if !tentativeChannels.isEmpty {
            tentativeChannels.remove(channel)
        }
        channelPositions?.set(position, for: channel)
        return event.bytes(chunked: isChunked, id: channelPositions?.description ?? "")
    }

    private mutating func queue(_ bytes: ByteBuffer) -> Action {
        defer { hasPendingWrites = true }
        return .write(bytes, touched: !hasPendingWrites)
    }

    private mutating func queue(_ writes: [ByteBuffer]) -> Action {
        defer { hasPendingWrites = true }
        return .writeAll(writes, touched: !hasPendingWrites)
    }

    /// The client's backlog when it is past its buffer; nil while it keeps up. Writable means
    /// at most the buffer is waiting: room for sure, and the backlog is not even read.
    private func overBudget(backlog: @autoclosure () -> Int) -> Int? {
        if isWritable { return nil }
        let unread = backlog()
        return unread > clientBufferBytes ? unread : nil
    }

    private mutating func cutOff(backlog: Int) -> Action {
        phase = .finishing
        dropHeld()
        return .cutOff(backlog: backlog)
    }

    private mutating func dropHeld() {
        held = []
        heldBytes = 0
    }
}
