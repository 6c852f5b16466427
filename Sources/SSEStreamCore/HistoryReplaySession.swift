import NIOCore
import SSEHistory
import SSERedis
import SSEWire

/// One replay of history to streams on one event loop, page by page, used only on that loop.
///
/// A resume (`Last-Event-ID`) has one stream; a catch-up (after the subscription or the loop
/// fell behind) has every stream of the loop with the same channels and start. The replay
/// starts once Redis has confirmed the subscriptions, so history plus live traffic leaves no
/// gap. It reads the counter's state, decides from it which ids count (`HistoryResumePlan`),
/// then reads bounded pages: each page is written as the streams take it (the next one is read
/// once every stream is writable again; one that stays full past `stallTimeout` is cut off as
/// too slow). Transient Redis errors (`-LOADING` after a restart, a lost connection) are
/// retried with backoff for `HistoryConfiguration.retrySeconds` before the streams are told
/// `unavailable`. The streams hold their live events meanwhile, and get heartbeats.
package final class HistoryReplaySession {
    /// Where the replay starts.
    package enum Start {
        /// A client's `Last-Event-ID` (the text as sent): only a position Redis vouches for counts.
        case resume(lastEventID: String)
        /// A position the node itself saw (epoch 0: the node knew of no history, so every entry counts).
        case catchUp(from: HistoryPosition)
        /// With positions per channel: where each channel stands (epoch 0 as above).
        case catchUpPerChannel(from: [ChannelName: HistoryPosition])
        /// With positions per channel: a new stream learns where its channels stand (their
        /// counters), for its id; nothing is replayed.
        case freshStart
    }

    /// How long a new stream's live events wait for its channels' counters (`.freshStart`).
    package static let freshStartLimit = TimeAmount.seconds(1)

    /// How long a page may wait for a stream to take the previous one.
    package static let stallTimeout = TimeAmount.seconds(10)

    /// How often a replay still holding its streams' live events says so, and what it waits for.
    package static let slowReport = TimeAmount.seconds(10)

    /// What the replay waits for now (for `slowReport`'s log line).
    private enum Step: String {
        case subscription = "the subscription's confirmation"
        case state = "the counter read"
        case page = "a page read"
        case epoch = "a new epoch"
        case streams = "the streams to take a page"
        case retry = "a retry after a Redis error"
    }

    private let hub: StreamHub
    private let history: HistoryStore
    private let loop: any EventLoop
    private var clients: [StreamClient]
    private let channels: [ChannelName]
    private let start: Start
    private let lastEventID: String
    private var cursor = HistoryPosition(epoch: 0, sequence: 0)
    /// With positions per channel: the channels still to read, each from its own cursor.
    private var cursors: [ChannelName: HistoryPosition] = [:]
    /// With positions per channel: the answers of one round of per-channel reads so far.
    private var statesArrived: [ChannelName: Result<HistoryState, RedisError>] = [:]
    private var pagesArrived: [ChannelName: Result<(HistoryPage, [EncodedEvent]), RedisError>] = [:]
    /// With positions per channel: counters found behind what this process saw were given a new
    /// epoch (once per replay) before the plan.
    private var checkedEpochs = false
    /// What this process had seen of each channel's counter when the state reads went out:
    /// positions it sees while they are in flight (its own publishes) may be newer than the
    /// answer without anything being lost.
    private var seenAtRead: [ChannelName: HistoryPosition] = [:]
    private var announced: Set<ChannelName> = []
    private var attempt = 0
    private let deadline: NIODeadline
    private var stallCheck: Scheduled<Void>?
    private var step = Step.subscription
    private var slowCheck: Scheduled<Void>?
    private var lastError: RedisError?
    private let startedAt = NIODeadline.now()
    /// Until the replay reads Redis, streams resuming from the same id on the same channels
    /// may join it (``join(_:)``); told once when that ends.
    private var joinClosed: (() -> Void)?
    /// Whether the replay has asked for its first page: until then it reads past any event
    /// published so far.
    package private(set) var pagesStarted = false
    /// Runs once when the replay ends, before its streams are released.
    package var onFinish: (() -> Void)?

    /// Creates the replay; each client must already be in `beginReplay`.
    package init(hub: StreamHub, history: HistoryStore, loop: any EventLoop, clients: [StreamClient], channels: [ChannelName], start: Start) {
        self.hub = hub
        self.history = history
        self.loop = loop
        self.clients = clients
        self.channels = channels
        self.start = start
        switch start {
        case .resume(let id): lastEventID = id
        case .catchUp(let from): lastEventID = from.description
        case .catchUpPerChannel(let from):
            var vector = ChannelPositions(channels: channels)
            for (channel, position) in from { vector.set(position, for: channel) }
            lastEventID = channels.count == 1 ? from[channels[0]]?.description ?? "" : vector.description
        case .freshStart:
            lastEventID = ""
        }
        let seconds = history.configuration.retrySeconds
        deadline = .now() + .milliseconds(Int64(exactly: (seconds * 1000).rounded()) ?? 30_000)
    }

    /// The history client's queue this replay uses: resumes and catch-ups wait in queues of
    /// their own (each bounded), so a catch-up storm after an outage never starves new resumes.
    private var lane: Int {
        switch start {
        case .resume, .freshStart: HistoryLane.resume
        case .catchUp, .catchUpPerChannel: HistoryLane.catchUp
        }
    }

    /// Whether a stream may still join: the replay has not read Redis yet.
    private var hasRead = false

    /// Adds `client` (already in `beginReplay`, the same channels and start) to a replay that
    /// has not read Redis yet, so many streams resuming together share its reads and encoding.
    /// False (nothing changed) once it has.
    package func join(_ client: StreamClient) -> Bool {
        loop.preconditionInEventLoop()
        guard !hasRead else { return false }
        clients.append(client)
        return true
    }

    /// Runs `closed` when the replay stops taking streams (it starts reading Redis).
    package func whenJoinCloses(_ closed: @escaping () -> Void) {
        joinClosed = closed
    }

    /// Starts once the subscriptions of every channel are confirmed.
    package func run() {
        loop.preconditionInEventLoop()
        if case .freshStart = start {
            // Where the channels stand now, not once subscribed: what follows that read is new.
            // A master slow to answer holds the new stream's live events for a second at most.
            readState()
            loop.assumeIsolated().scheduleTask(in: Self.freshStartLimit) { [self] in finish(announcing: nil) }
            return
        }
        scheduleSlowReport()
        let bound = NIOLoopBound(self, eventLoop: loop)
        let loop = self.loop
        hub.subscriber.whenSubscribed(channels.map(\.text)) { _ in
            loop.execute { bound.value.readState() }
        }
    }

    // MARK: Steps (on the loop)

    private func readState() {
        if !hasRead {
            hasRead = true
            joinClosed?()
            joinClosed = nil
        }
        guard pruneClients() else {
            endWithoutStreams()
            return
        }
        step = .state
        let bound = NIOLoopBound(self, eventLoop: loop)
        let loop = self.loop
        guard hub.positionsPerChannel else {
            history.state(lane: lane) { result in
                loop.execute { bound.value.stateArrived(result) }
            }
            return
        }
        // One read per channel (each on its own slot's master), all at once.
        statesArrived = [:]
        seenAtRead = [:]
        for channel in Set(channels) { seenAtRead[channel] = history.seen(on: channel.text) }
        for channel in Set(channels) {
            history.state(channel: channel.text, lane: lane) { result in
                loop.execute { bound.value.channelStateArrived(result, for: channel) }
            }
        }
    }

    private func stateArrived(_ result: Result<HistoryState, RedisError>) {
        guard pruneClients() else {
            endWithoutStreams()
            return
        }
        switch result {
        case .failure(let error):
            retryOrGiveUp(error) { $0.readState() }
        case .success(let state):
            attempt = 0
            lastError = nil
            hub.observe(state)
            let plan: HistoryResumePlan
            switch start {
            case .resume(let id):
                plan = HistoryResumePlan.plan(resumingAfter: HistoryPosition(id), state: state)
                if case .replay(let after, _) = plan {
                    for client in clients { client.resetPosition(to: after) }
                } else if case .unknown(let position) = plan {
                    for client in clients { client.resetPosition(to: position) }
                }
            case .catchUp(let from) where from.epoch == 0:
                plan = .replay(after: from, gap: nil)
            case .catchUp(let from):
                plan = HistoryResumePlan.plan(resumingAfter: from, state: state)
            case .catchUpPerChannel, .freshStart:
                // Only with positions per channel, whose states arrive one per channel.
                plan = .unknown(position: nil)
            }
            switch plan {
            case .unknown:
                finish(announcing: .unknown)
            case .replay(let after, let gap):
                cursor = after
                if let gap { announce(channels.map { ($0, gap) }, andWrite: []) }
                readPage()
            }
        }
    }

    private func readPage() {
        guard pruneClients() else {
            endWithoutStreams()
            return
        }
        step = .page
        pagesStarted = true
        if hub.positionsPerChannel {
            readChannelPages()
            return
        }
        let bound = NIOLoopBound(self, eventLoop: loop)
        let loop = self.loop
        let allocator = hub.allocator
        let maxPayloadBytes = hub.maxPayloadBytes
        history.page(channels: channels.map(\.text), after: cursor, lane: lane) { result in
            // Decoded and encoded once per page, off the loop, for every stream of the replay
            // (an entry past --max-payload is skipped, as it is live).
            let encoded = result.map { page in
                (page, page.events.filter { $0.payload.count <= maxPayloadBytes }.map { entry in
                    EncodedEvent(EncodedEvent.decode(redisPayload: entry.payload).event, position: entry.position, channel: ChannelName(entry.channel), allocator: allocator)
                })
            }
            loop.execute { bound.value.pageArrived(encoded) }
        }
    }

    private func pageArrived(_ result: Result<(HistoryPage, [EncodedEvent]), RedisError>) {
        guard pruneClients() else {
            endWithoutStreams()
            return
        }
        switch result {
        case .failure(let error):
            retryOrGiveUp(error) { $0.readPage() }
        case .success(let (page, events)):
            attempt = 0
            lastError = nil
            hub.noteReplayed(events.count * clients.count)
            announce(page.gaps.map { (ChannelName($0.channel), $0.gap) }, andWrite: events)
            guard let next = page.next else {
                finish(announcing: nil)
                return
            }
            cursor = next
            waitForClientsThenReadPage()
        }
    }

    // MARK: Positions per channel (on the loop)

    private func channelStateArrived(_ result: Result<HistoryState, RedisError>, for channel: ChannelName) {
        statesArrived[channel] = result
        guard statesArrived.count == Set(channels).count else { return }
        let arrived = statesArrived
        statesArrived = [:]
        guard pruneClients() else {
            endWithoutStreams()
            return
        }
        var states: [ChannelName: HistoryState] = [:]
        for (channel, result) in arrived {
            switch result {
            case .failure(let error):
                retryOrGiveUp(error) { $0.readState() }
                return
            case .success(let state):
                states[channel] = state
            }
        }
        attempt = 0
        lastError = nil
        // A channel's counter below what this process saw in the same epoch (or back in an older
        // one): Redis lost events (a replica promoted before it got the last writes). Start a new
        // epoch there first, as a reconnect does for the shared counter, so ids already issued are
        // never issued again and the plan tells those who missed them `lost`.
        let behind = checkedEpochs ? [] : states.compactMap { channel, state -> ChannelName? in
            guard let seen = seenAtRead[channel] else { return nil }
            guard let current = state.current else { return nil }
            return seen > current ? channel : nil
        }
        checkedEpochs = true
        if !behind.isEmpty {
            let bound = NIOLoopBound(self, eventLoop: loop)
            let loop = self.loop
            let remaining = NIOLoopBoundBox(behind.count, eventLoop: loop)
            hub.noteCounterBehind(behind)
            step = .epoch
            for channel in behind {
                history.startEpochIfBehind(channel: channel.text) { _ in
                    loop.execute {
                        remaining.value -= 1
                        if remaining.value == 0 { bound.value.readState() }
                    }
                }
            }
            return
        }
        for (channel, state) in states { hub.observe(state, on: channel) }
        if case .freshStart = start {
            for (channel, state) in states {
                // The node learns it too, so the next new stream of the channel needs no read.
                hub.learnedStart(of: channel, at: state.current)
                guard let current = state.current else { continue }
                // The read ran after the stream was registered, maybe after events that reach
                // it live: a tentative start, so those are still written.
                for client in clients { client.startTentatively(at: current, on: channel) }
            }
            finish(announcing: nil)
            return
        }
        var gaps: [(ChannelName, HistoryGap)] = []
        cursors = [:]
        for channel in Set(channels).sorted() {
            guard let state = states[channel] else { continue }
            switch plan(for: channel, state: state) {
            case .replay(let after, let gap):
                cursors[channel] = after
                if let gap { gaps.append((channel, gap)) }
            case .unknown:
                gaps.append((channel, .unknown))
            }
        }
        announce(gaps, andWrite: [])
        guard !cursors.isEmpty else {
            finish(announcing: nil)
            return
        }
        readPage()
    }

    /// What the replay does on `channel`, from its counter's `state`; a resume also sets where
    /// its streams stand there.
    private func plan(for channel: ChannelName, state: HistoryState) -> HistoryResumePlan {
        let origin = HistoryPosition(epoch: 0, sequence: 0)
        switch start {
        case .resume(let id):
            let plan: HistoryResumePlan
            if channels.count == 1 {
                plan = HistoryResumePlan.plan(resumingAfter: HistoryPosition(id), state: state)
            } else if let vector = ChannelPositions(id, channels: channels) {
                // `-`: the stream had no position on the channel when it got that id (the channel
                // had no history then): everything the channel's history holds is new to it.
                plan = vector.position(of: channel).map { HistoryResumePlan.plan(resumingAfter: $0, state: state) } ?? .replay(after: origin, gap: nil)
            } else {
                plan = .unknown(position: nil)
            }
            switch plan {
            case .replay(let after, _):
                for client in clients { client.resetPosition(to: after == origin ? nil : after, on: channel) }
            case .unknown(let position):
                for client in clients { client.resetPosition(to: position, on: channel) }
            }
            return plan
        case .catchUpPerChannel(let from):
            let position = from[channel] ?? origin
            return position.epoch == 0 ? .replay(after: position, gap: nil) : HistoryResumePlan.plan(resumingAfter: position, state: state)
        case .catchUp(let from):
            return from.epoch == 0 ? .replay(after: from, gap: nil) : HistoryResumePlan.plan(resumingAfter: from, state: state)
        case .freshStart:
            return .unknown(position: nil)
        }
    }

    /// One page per channel still to read, each from its own cursor, all at once.
    private func readChannelPages() {
        let bound = NIOLoopBound(self, eventLoop: loop)
        let loop = self.loop
        let allocator = hub.allocator
        pagesArrived = [:]
        // One round of calls shares one page's budget, as one call over every channel would.
        let share = cursors.count
        let maxPayloadBytes = hub.maxPayloadBytes
        for (channel, cursor) in cursors {
            history.page(channels: [channel.text], after: cursor, share: share, lane: lane) { result in
                let encoded = result.map { page in
                    (page, page.events.filter { $0.payload.count <= maxPayloadBytes }.map { entry in
                        EncodedEvent(EncodedEvent.decode(redisPayload: entry.payload).event, position: entry.position, channel: channel, allocator: allocator)
                    })
                }
                loop.execute { bound.value.channelPageArrived(encoded, for: channel) }
            }
        }
    }

    private func channelPageArrived(_ result: Result<(HistoryPage, [EncodedEvent]), RedisError>, for channel: ChannelName) {
        pagesArrived[channel] = result
        guard pagesArrived.count == cursors.count else { return }
        let arrived = pagesArrived
        pagesArrived = [:]
        guard pruneClients() else {
            endWithoutStreams()
            return
        }
        var events: [EncodedEvent] = []
        var gaps: [(ChannelName, HistoryGap)] = []
        var next: [ChannelName: HistoryPosition] = [:]
        for channel in cursors.keys.sorted() {
            switch arrived[channel] {
            case .failure(let error)?:
                // Nothing of this round was written: it is read again, from the same cursors.
                retryOrGiveUp(error) { $0.readPage() }
                return
            case .success(let (page, encoded))?:
                events += encoded
                gaps += page.gaps.map { (ChannelName($0.channel), $0.gap) }
                if let position = page.next { next[channel] = position }
            case nil:
                continue
            }
        }
        attempt = 0
        lastError = nil
        hub.noteReplayed(events.count * clients.count)
        announce(gaps, andWrite: events)
        cursors = next
        guard !cursors.isEmpty else {
            finish(announcing: nil)
            return
        }
        waitForClientsThenReadPage()
    }

    /// Reads the next page once every stream took the last one; cuts off streams that do not
    /// within `stallTimeout`.
    private func waitForClientsThenReadPage() {
        let waiting = clients.filter { !$0.canTakeReplayPage }
        guard !waiting.isEmpty else {
            readPage()
            return
        }
        step = .streams
        let bound = NIOLoopBound(self, eventLoop: loop)
        for client in waiting {
            client.whenWritable { bound.value.clientTookPage() }
        }
        stallCheck?.cancel()
        stallCheck = loop.assumeIsolated().scheduleTask(in: Self.stallTimeout) { [self] in
            stallCheck = nil
            for client in clients where !client.canTakeReplayPage { client.cutOffAsSlow() }
            clientTookPage()
        }
    }

    private func clientTookPage() {
        guard clients.allSatisfy(\.canTakeReplayPage) else { return }
        stallCheck?.cancel()
        stallCheck = nil
        readPage()
    }

    private func retryOrGiveUp(_ error: RedisError, _ again: @escaping (HistoryReplaySession) -> Void) {
        if case .freshStart = start {
            // Nothing was missed, and a new stream's live events wait for this: no retries. The
            // stream only goes without a start on those channels (its id names them `-`).
            finish(announcing: nil)
            return
        }
        let delay = TimeAmount.milliseconds(Int64(HistoryRetry.delayMilliseconds(attempt: attempt)))
        guard HistoryRetry.isTransient(error), NIODeadline.now() + delay < deadline else {
            hub.noteReplayFailure(error, channels: channels)
            finish(announcing: .unavailable)
            return
        }
        attempt += 1
        step = .retry
        lastError = error
        loop.assumeIsolated().scheduleTask(in: delay) { [self] in again(self) }
    }

    /// Writes `gaps` not announced yet (one `history-gap` event) and `events` to every stream.
    private func announce(_ gaps: [(ChannelName, HistoryGap)], andWrite events: [EncodedEvent]) {
        let fresh = gaps.filter { announced.insert($0.0).inserted }
        let notice = fresh.isEmpty ? nil : hub.gapEvent(fresh, lastEventID: lastEventID)
        guard notice != nil || !events.isEmpty else { return }
        for client in clients { client.deliverReplay(events, gap: notice) }
    }

    /// Ends the replay: an optional notice for every channel not announced yet, then each
    /// stream's held live events.
    private func finish(announcing gap: HistoryGap?) {
        if let gap { announce(channels.map { ($0, gap) }, andWrite: []) }
        stallCheck?.cancel()
        stallCheck = nil
        slowCheck?.cancel()
        slowCheck = nil
        endHooks()
        // What waited for a new stream's start (a catch-up) begins before the held live events are
        // released, so they stay held behind it and it starts where the stream did.
        if case .freshStart = start {
            for client in clients { client.startKnown() }
        }
        for client in clients { client.completeReplay() }
        clients = []
    }

    /// Every `slowReport` until the replay ends: a warning naming what it waits for (its
    /// streams' live events are held meanwhile, so a replay that does not end is a stall an
    /// operator must be able to see).
    private func scheduleSlowReport() {
        slowCheck = loop.assumeIsolated().scheduleTask(in: Self.slowReport) { [self] in
            slowCheck = nil
            guard pruneClients() else {
                endWithoutStreams()
                return
            }
            let seconds = Double((NIODeadline.now() - startedAt).nanoseconds) / 1e9
            hub.noteReplaySlow(seconds: seconds, waitingFor: step.rawValue, lastError: lastError, channels: channels, streams: clients.count)
            scheduleSlowReport()
        }
    }

    /// Its streams are all gone: it ends without Redis work (its hooks run, its timers stop).
    private func endWithoutStreams() {
        stallCheck?.cancel()
        stallCheck = nil
        slowCheck?.cancel()
        slowCheck = nil
        endHooks()
    }

    private func endHooks() {
        let hook = onFinish
        onFinish = nil
        hook?()
    }

    /// Drops streams that closed; false when none is left (the replay then stops: no Redis
    /// work for streams that are gone).
    private func pruneClients() -> Bool {
        clients.removeAll { !$0.isOpen }
        return !clients.isEmpty
    }
}
