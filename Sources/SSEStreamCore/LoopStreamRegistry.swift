import NIOCore
import SSEWire

/// The stream clients of one event loop, used only on that loop.
///
/// Fan-out happens here: a batch of events arrives with one hop onto the loop, each event's
/// shared bytes are written to every client of its channel, and each touched client is
/// flushed once at the end of the batch, so a burst costs one syscall per client, not one per
/// event. Heartbeats are one timer per loop, not one per client, spread evenly over the
/// interval by a ``HeartbeatRing``, so tens of thousands of streams never all get theirs in the
/// same loop turn.
package final class LoopStreamRegistry {
    package let eventLoop: any EventLoop
    /// Streams of exactly one channel: they take a channel's whole batch in one write.
    private var byChannel: [ChannelName: [ObjectIdentifier: StreamClient]] = [:]
    /// Streams of several channels: they take events one by one, in publish order.
    private var multiByChannel: [ChannelName: [ObjectIdentifier: StreamClient]] = [:]
    private var needingFlush: [StreamClient] = []
    private var isFlushScheduled = false
    /// Least time between two flushes of a delivery on this loop; see `deliver`.
    private let flushInterval: TimeAmount
    /// When deliveries were last flushed. Heartbeats are flushed apart from them and leave it
    /// alone: they go out on a timer every 50 ms or less, and if they counted, an event just after
    /// a tick would wait for the interval at any rate.
    private var lastFlush: NIODeadline?
    /// When the last delivery came, and a moving average of the time between deliveries' events
    /// (nanoseconds, each gap at most 2 s, above the largest interval, 1 s): pacing is for a loop whose events come closer
    /// than `flushInterval` on average; where they come further apart, as at 100 events/s, a
    /// pair that happens to come close (a publisher catching up) is not held back.
    private var lastDelivery: NIODeadline?
    private var averageGap: Int64 = 0
    private var pacedFlush: Scheduled<Void>?
    private let heartbeat: EncodedEvent
    private var heartbeatTask: RepeatedTask?
    /// Every client of this loop, in heartbeat order.
    private var heartbeatRing = HeartbeatRing<StreamClient>()
    private var heartbeatRoundStart = NIODeadline.now()
    private var heartbeatInterval = TimeAmount.seconds(15)
    private let metrics: BrokerMetrics
    /// Resume replays of this loop that have not read Redis yet, which later resumes with the
    /// same key join (``StreamHub``'s `register`); each leaves once it reads.
    package var pendingResumes: [ResumeKey: HistoryReplaySession] = [:]
    /// Live-gap catch-ups of this loop still running, by channel (``StreamHub``'s
    /// `catchUpLiveGaps`): one that has not read its first page covers any later gap of its
    /// channel, so gaps never pile up replays. Each leaves when it ends.
    package var gapCatchUps: [ChannelName: [HistoryReplaySession]] = [:]

    /// - Parameter flushInterval: deliveries that come sooner than this after the loop's last
    ///   flush are written and flushed together once it has passed (`.zero`: never paced).
    package init(eventLoop: any EventLoop, allocator: ByteBufferAllocator, metrics: BrokerMetrics, flushInterval: TimeAmount = .milliseconds(5)) {
        self.eventLoop = eventLoop
        self.metrics = metrics
        self.flushInterval = flushInterval
        self.heartbeat = EncodedEvent(text: EventTextEncoder.comment(), allocator: allocator)
    }

    package func add(_ client: StreamClient) {
        eventLoop.preconditionInEventLoop()
        let id = ObjectIdentifier(client)
        heartbeatRing.insert(client)
        for channel in client.channels {
            if client.channels.count == 1 {
                byChannel[channel, default: [:]][id] = client
            } else {
                multiByChannel[channel, default: [:]][id] = client
            }
        }
    }

    package func remove(_ client: StreamClient) {
        eventLoop.preconditionInEventLoop()
        let id = ObjectIdentifier(client)
        heartbeatRing.remove(client)
        for channel in client.channels {
            byChannel[channel]?[id] = nil
            if byChannel[channel]?.isEmpty == true { byChannel[channel] = nil }
            multiByChannel[channel]?[id] = nil
            if multiByChannel[channel]?.isEmpty == true { multiByChannel[channel] = nil }
        }
    }

    /// Every open client of this loop.
    package var clients: [StreamClient] { heartbeatRing.members }

    /// The open streams of `channel` on this loop (single- and multi-channel).
    package func clients(of channel: ChannelName) -> [StreamClient] {
        Array((byChannel[channel] ?? [:]).values) + Array((multiByChannel[channel] ?? [:]).values)
    }

    /// Writes one read's worth of events: each single-channel stream gets its channel's batch in
    /// one write, each multi-channel stream every event in order; then each touched stream is
    /// flushed once. With `flushNow` single-channel streams are written and flushed in one pass
    /// (one visit per client, and the first bytes leave at once). Figures for metrics are added
    /// once per call.
    ///
    /// Paced flushes: while the loop's events come closer together than `flushInterval` on
    /// average, a delivery that comes within the interval of the loop's last flush of deliveries
    /// (heartbeat flushes do not count) is written but flushed only once the interval has passed,
    /// together with whatever else came meanwhile. At low rates (events further apart than the
    /// interval on average) every delivery leaves at once; at high rates each client gets one
    /// `writev` per interval instead of one per event, which is most of a delivery's cost (the
    /// syscall and loopback TCP). It adds at most the interval to a delivery's latency.
    package func deliver(_ delivery: LoopDelivery, flushNow requested: Bool = false) {
        eventLoop.preconditionInEventLoop()
        let arrival = eventLoop.now
        let busy = observeDelivery(at: arrival, events: delivery.ordered.count)
        let paced = pacedFlush != nil || (busy && lastFlush.map { arrival - $0 < flushInterval } ?? false)
        let flushNow = requested && !paced
        var delivered = 0
        var bytes = 0
        for batch in delivery.batches {
            guard let clients = byChannel[batch.channel] else { continue }
            for client in clients.values where client.enqueue(batch, flushNow: flushNow) {
                needingFlush.append(client)
            }
            delivered += clients.count * batch.events.count
            bytes += clients.count * batch.chunked.readableBytes
        }
        if !multiByChannel.isEmpty {
            for routed in delivery.ordered {
                guard let clients = multiByChannel[routed.channel] else { continue }
                for client in clients.values where client.enqueue(routed.event) {
                    needingFlush.append(client)
                }
                delivered += clients.count
                bytes += clients.count * routed.event.chunked.readableBytes
            }
        }
        var now: Double?
        for routed in delivery.ordered {
            guard let stamp = routed.event.publishedAtMilliseconds else { continue }
            let current = now ?? WallClock.seconds() * 1000
            now = current
            // Both are plausible Unix milliseconds (see `EncodedEvent.plausibleStamp`), so the
            // difference fits; the checked conversion keeps it that way whatever changes upstream.
            guard let nanoseconds = Int64(exactly: (max(0, current - stamp) * 1_000_000).rounded(.down)) else { continue }
            metrics.deliveryDelay.recordNanoseconds(nanoseconds)
        }
        if paced {
            schedulePacedFlush()
        } else if flushNow {
            flushTouchedNow()
        } else {
            flushTouched()
        }
        metrics.eventsDelivered.increment(by: delivered)
        metrics.bytesDelivered.increment(by: bytes)
    }

    /// Adds a delivery of `events` events at `now` to the average gap; whether the loop's events
    /// come closer together than `flushInterval` on average.
    private func observeDelivery(at now: NIODeadline, events: Int) -> Bool {
        if let lastDelivery {
            let gap = min(max(0, (now - lastDelivery).nanoseconds), 2_000_000_000) / Int64(max(1, min(events, 1_000)))
            averageGap += (gap - averageGap) / 8
        }
        lastDelivery = now
        return averageGap < flushInterval.nanoseconds
    }

    /// Sends a heartbeat comment to the clients due by now in this round; each client present
    /// for a whole round gets exactly one.
    package func sendHeartbeats(now: NIODeadline = .now()) {
        if now - heartbeatRoundStart >= heartbeatInterval {
            heartbeatRoundStart = now
            heartbeatRing.startRound()
        }
        let elapsed = Double((now - heartbeatRoundStart).nanoseconds)
        let due = heartbeatRing.takeDue(atFraction: elapsed / Double(max(1, heartbeatInterval.nanoseconds)))
        // Each is flushed at once, on its own: a client with deliveries still waiting for a paced
        // flush is not touched by its heartbeat and leaves with them.
        for client in due where client.enqueueHeartbeat(heartbeat) {
            client.flushPending()
        }
    }

    /// Flushes touched clients right away (the last delivery queued on this loop).
    private func flushTouchedNow() {
        lastFlush = eventLoop.now
        for client in needingFlush { client.flushPending() }
        needingFlush.removeAll(keepingCapacity: true)
    }

    /// Flushes what paced deliveries wrote once `flushInterval` has passed since the last flush.
    private func schedulePacedFlush() {
        guard pacedFlush == nil else { return }
        guard !needingFlush.isEmpty else { return }
        pacedFlush = eventLoop.assumeIsolated().scheduleTask(deadline: (lastFlush ?? eventLoop.now) + flushInterval) { [self] in
            pacedFlush = nil
            flushTouchedNow()
        }
    }

    /// Flushes touched clients once per loop turn: the flush runs as a task after whatever is
    /// already queued on the loop, so deliveries that piled up while the loop was busy leave in
    /// one `writev` per client instead of one each. At low rates it runs right away.
    private func flushTouched() {
        guard !isFlushScheduled, !needingFlush.isEmpty else { return }
        isFlushScheduled = true
        eventLoop.assumeIsolated().execute { [self] in
            isFlushScheduled = false
            flushTouchedNow()
        }
    }

    /// Starts the loop's heartbeat timer. It ticks 16 times per interval, and at least every
    /// 50 ms, so each tick writes a small share of the clients.
    package func startHeartbeat(every interval: TimeAmount) {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        heartbeatInterval = interval
        heartbeatRoundStart = .now()
        heartbeatRing.startRound()
        let tick = TimeAmount.nanoseconds(max(1_000_000, min(interval.nanoseconds / 16, 50_000_000)))
        heartbeatTask = eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { _ in
            bound.value.sendHeartbeats()
        }
    }

    package func stopHeartbeat() {
        heartbeatTask?.cancel()
        heartbeatTask = nil
    }
}

/// An encoded event and the channel it was published on.
package struct RoutedEvent: Sendable {
    package let channel: ChannelName
    package let event: EncodedEvent
}
