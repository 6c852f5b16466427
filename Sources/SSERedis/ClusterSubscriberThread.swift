import Logging
import SSEPOSIX
import SSEWire
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The subscriber's thread on a Redis Cluster (`pubsub=both`): one `poll()` loop over a classic
/// link (`SUBSCRIBE` on any node: every `PUBLISH` reaches it) and one sharded link per shard that
/// serves a wanted channel (`SSUBSCRIBE`, one slot per command), plus the wake-up pipe.
///
/// Connects and `CLUSTER SLOTS` reads run on short-lived threads of their own and hand their
/// result back through the wake-up pipe, so a shard that does not answer never stalls delivery
/// from the others. A channel a shard stops serving (the server's `sunsubscribe` push when its
/// slot moves, or a `-MOVED` answer) is placed again from a fresh topology, and once it is
/// subscribed on its new shard the delegate hears `subscriberDidConnect`, so streams catch up
/// from history across the move; so does a shard link that comes back after a failure. The
/// topology is also read again every `refreshInterval`.
final class ClusterSubscriberThread: @unchecked Sendable {
    // @unchecked: after `start()` every stored property but `results` (a Mutex) is used by the
    // spawned thread alone.
    private let owner: RedisSubscriber
    private let endpoint: ClusterEndpoint
    private let classic: Lane
    /// Sharded links by the master they go to.
    private var shards: [SentinelAddress: Lane] = [:]
    private var topology: ClusterTopology?
    /// Where each wanted sharded channel is subscribed.
    private var placement: [ChannelName: SentinelAddress] = [:]
    /// Wanted sharded channels with no shard yet (no topology, or displaced).
    private var unplaced: Set<ChannelName> = []
    /// Waiter parts for channels that had no shard when they came.
    private var parked: [(waiter: CompositeWaiter, channels: Set<ChannelName>)] = []
    /// Displaced channels placed again: the delegate hears of it once they are subscribed.
    private var movedSinceCatchUp: Set<ChannelName> = []
    private var refreshInFlight = false
    private var refreshDue: ContinuousClock.Instant = .now
    private var refreshBackoff: ReconnectBackoff
    private var publishedRefused: Set<ChannelName> = []
    private var helpers: [OwnedThread] = []
    private let results = Mutex<[Result]>([])

    /// How often the topology is read again without a reason.
    static let refreshInterval: Duration = .seconds(30)
    /// Most shards a node connects to.
    static let maximumShards = 1024

    /// A link with its connect state.
    private final class Lane {
        let link: SubscriberLink
        let address: SentinelAddress?
        var connecting = false
        var retryAt: ContinuousClock.Instant = .now
        var backoff: ReconnectBackoff
        var hasConnected = false
        var hasReportedDown = false

        init(link: SubscriberLink, address: SentinelAddress?, backoff: ReconnectBackoff) {
            self.link = link
            self.address = address
            self.backoff = backoff
        }
    }

    /// What a helper thread hands back.
    private enum Result: @unchecked Sendable {
        // @unchecked: a connection is handed over once and then used by the subscriber thread alone.
        case connected(SentinelAddress?, Swift.Result<RedisConnection, RedisError>)
        case topology(Swift.Result<ClusterTopology, RedisError>)
    }

    init(owner: RedisSubscriber, endpoint: ClusterEndpoint) {
        self.owner = owner
        self.endpoint = endpoint
        let tuning = owner.tuning
        let backoff = ReconnectBackoff(baseMilliseconds: tuning.backoffBaseMilliseconds, capMilliseconds: tuning.backoffCapMilliseconds)
        self.refreshBackoff = backoff
        self.classic = Lane(
            link: SubscriberLink(owner: owner, verbs: .classic, probe: owner.probe.map { SubscriberProbe(owner: owner, shared: $0) }),
            address: nil,
            backoff: backoff
        )
    }

    /// Spawns the thread; nil (and logged) if the system refused one.
    func start() -> OwnedThread? {
        guard let thread = OwnedThread.spawn({ [self] in run() }) else {
            owner.log.critical("cannot start the Redis subscriber thread")
            return nil
        }
        return thread
    }

    private var probeChannel: ChannelName? { classic.link.probe?.channel }

    private func run() {
        defer {
            classic.link.detach()
            for lane in shards.values { lane.link.detach() }
            for helper in helpers { helper.join() }
            owner.setConnected(false)
        }
        do throws(RedisError) {
            try takeInputs(force: true)
        } catch {
            owner.log.error("Redis subscription inputs failed", metadata: ["error": "\(error)"])
        }
        while !owner.isStopping {
            takeResults()
            try? takeInputs(force: false)
            startWork()
            pollOnce()
            placeDisplaced()
            closeIdleShards()
            publishState()
        }
    }

    // MARK: Inputs

    private func takeInputs(force: Bool) throws(RedisError) {
        let (wanted, added, removed, waiters) = owner.takeInputs(force: force)
        try classic.link.take(wanted: wanted, added: added, removed: removed, waiters: [])
        var sharedAdded = added
        var sharedRemoved = removed
        if let wanted {
            sharedAdded = Array(wanted)
            sharedRemoved = []
        }
        let parkedBefore = unplaced.count
        for channel in sharedRemoved {
            unplaced.remove(channel)
            movedSinceCatchUp.remove(channel)
            if let address = placement.removeValue(forKey: channel) {
                try shards[address]?.link.take(wanted: nil, added: [], removed: [channel], waiters: [])
            }
        }
        for channel in sharedAdded where channel != probeChannel && placement[channel] == nil {
            place(channel)
        }
        // Parked parts of channels no longer wanted are answered.
        if unplaced.count < parkedBefore { unpark() }
        for waiter in waiters { try register(waiter) }
    }

    /// Puts `channel` on the link of the shard serving its slot, or leaves it unplaced.
    private func place(_ channel: ChannelName) {
        guard let topology, let master = topology.master(forSlot: ClusterSlot.slot(of: channel.bytes)), let lane = lane(for: master) else {
            unplaced.insert(channel)
            refreshSoon()
            return
        }
        unplaced.remove(channel)
        placement[channel] = master
        try? lane.link.take(wanted: nil, added: [channel], removed: [], waiters: [])
    }

    private func lane(for master: SentinelAddress) -> Lane? {
        if let lane = shards[master] { return lane }
        guard shards.count < Self.maximumShards else { return nil }
        let tuning = owner.tuning
        let lane = Lane(
            link: SubscriberLink(owner: owner, verbs: .sharded, probe: nil),
            address: master,
            backoff: ReconnectBackoff(baseMilliseconds: tuning.backoffBaseMilliseconds, capMilliseconds: tuning.backoffCapMilliseconds)
        )
        shards[master] = lane
        return lane
    }

    /// Splits a waiter over the links: the classic link for every channel, each shard for the
    /// channels it holds; channels with no shard yet wait parked.
    private func register(_ waiter: SubscriptionWaiter) throws(RedisError) {
        let composite = CompositeWaiter(waiter)
        try wait(composite, on: classic.link, for: waiter.channels)
        try split(composite, waiter.channels.filter { $0 != probeChannel })
        composite.arm()
    }

    private func wait(_ composite: CompositeWaiter, on link: SubscriberLink, for channels: Set<ChannelName>) throws(RedisError) {
        composite.addPart()
        try link.wait(composite.part(), for: channels)
    }

    /// Registers parts of `composite` for `channels` on their shards; parks the unplaced ones.
    private func split(_ composite: CompositeWaiter, _ channels: Set<ChannelName>) throws(RedisError) {
        var byShard: [SentinelAddress: Set<ChannelName>] = [:]
        var waiting: Set<ChannelName> = []
        for channel in channels {
            if let address = placement[channel] {
                byShard[address, default: []].insert(channel)
            } else if unplaced.contains(channel) {
                waiting.insert(channel)
            }
        }
        for (address, part) in byShard {
            guard let lane = shards[address] else { continue }
            try wait(composite, on: lane.link, for: part)
        }
        if !waiting.isEmpty {
            composite.addPart()
            parked.append((composite, waiting))
        }
    }

    /// Parked waiter parts whose channels now have a shard (or are no longer wanted) move on.
    private func unpark() {
        guard !parked.isEmpty else { return }
        let waiting = parked
        parked = []
        for (composite, channels) in waiting {
            try? split(composite, channels)
            composite.partDone(refused: [])
        }
    }

    // MARK: Helpers' results

    private func takeResults() {
        let taken = results.withLock { results in
            defer { results.removeAll() }
            return results
        }
        for result in taken {
            switch result {
            case .topology(let outcome):
                refreshInFlight = false
                switch outcome {
                case .success(let fresh):
                    refreshBackoff.reset()
                    refreshDue = .now.advanced(by: Self.refreshInterval)
                    adopt(fresh)
                case .failure(let error):
                    owner.log.warning("Redis Cluster topology read failed", metadata: ["error": "\(error)"])
                    refreshDue = .now.advanced(by: .milliseconds(refreshBackoff.nextDelayMilliseconds()))
                }
            case .connected(let address, let outcome):
                let lane = address.flatMap { shards[$0] } ?? (address == nil ? classic : nil)
                guard let lane else {
                    // The shard left the topology while connecting.
                    continue
                }
                lane.connecting = false
                switch outcome {
                case .success(let connection):
                    attach(connection, to: lane)
                case .failure(let error):
                    lane.link.detach()
                    reportDown(lane, error)
                }
            }
        }
    }

    private func attach(_ connection: RedisConnection, to lane: Lane) {
        do throws(RedisError) {
            try lane.link.attach(connection)
        } catch {
            lane.link.detach()
            reportDown(lane, error)
            return
        }
        let isReconnect = lane.hasConnected
        lane.hasConnected = true
        lane.hasReportedDown = false
        lane.backoff.reset()
        owner.log.info(
            "Redis subscription connected",
            metadata: [
                "redis": "\(owner.redisConfiguration)", "link": "\(lane.address.map { "shard \($0)" } ?? "classic")",
                "channels": "\(lane.link.machine.wanted.count)",
            ]
        )
        // The classic link's first connect is the subscription's; a shard's first connect
        // subscribes channels whose streams wait for it anyway. A reconnect may have missed events.
        if lane.address == nil || isReconnect {
            owner.delegate?.subscriberDidConnect(owner)
        }
    }

    private func reportDown(_ lane: Lane, _ error: RedisError) {
        lane.retryAt = .now.advanced(by: .milliseconds(lane.backoff.nextDelayMilliseconds()))
        // A shard that fails may have failed over: ask where its slots are now.
        if lane.address != nil { refreshSoon() }
        if !lane.hasReportedDown {
            lane.hasReportedDown = true
            owner.log.warning(
                "Redis subscription down, retrying with backoff",
                metadata: ["error": "\(error)", "link": "\(lane.address.map { "shard \($0)" } ?? "classic")"]
            )
            owner.delegate?.subscriber(owner, didDisconnectWith: error)
        } else {
            owner.log.debug("Redis reconnect failed", metadata: ["error": "\(error)", "attempt": "\(lane.backoff.failures)"])
        }
    }

    /// A fresh topology: every sharded channel goes where its slot is served now; links to
    /// masters that serve nothing wanted are closed.
    private func adopt(_ fresh: ClusterTopology) {
        topology = fresh
        for (channel, address) in placement {
            let master = fresh.master(forSlot: ClusterSlot.slot(of: channel.bytes))
            guard master != address else { continue }
            placement.removeValue(forKey: channel)
            try? shards[address]?.link.take(wanted: nil, added: [], removed: [channel], waiters: [])
            unplaced.insert(channel)
            movedSinceCatchUp.insert(channel)
        }
        for channel in unplaced { place(channel) }
        unpark()
        expectCatchUp()
    }

    /// Once the moved channels are subscribed where they are now, streams catch up from history.
    private func expectCatchUp() {
        let moved = movedSinceCatchUp.filter { placement[$0] != nil }
        guard !moved.isEmpty else { return }
        movedSinceCatchUp.subtract(moved)
        let composite = CompositeWaiter(SubscriptionWaiter(channels: moved) { [owner] _ in
            owner.log.notice("sharded channels moved to another shard; streams catch up from history", metadata: ["channels": "\(moved.count)"])
            owner.delegate?.subscriberDidConnect(owner)
        })
        try? split(composite, moved)
        composite.arm()
    }

    /// Channels the shards said they no longer serve wait for a fresh topology.
    private func placeDisplaced() {
        var displaced: [ChannelName] = []
        for (address, lane) in shards {
            for channel in lane.link.takeDisplaced() where placement[channel] == address {
                placement.removeValue(forKey: channel)
                try? lane.link.take(wanted: nil, added: [], removed: [channel], waiters: [])
                displaced.append(channel)
            }
        }
        guard !displaced.isEmpty else { return }
        owner.log.info("a shard no longer serves some channels; reading the cluster topology", metadata: ["channels": "\(displaced.count)"])
        unplaced.formUnion(displaced)
        movedSinceCatchUp.formUnion(displaced)
        refreshSoon()
    }

    private func closeIdleShards() {
        for (address, lane) in shards where lane.link.machine.wanted.isEmpty && !lane.connecting {
            guard lane.link.machine.commandsInFlight == 0, lane.link.machine.waiterCount == 0 else { continue }
            lane.link.detach()
            shards.removeValue(forKey: address)
        }
    }

    private func refreshSoon() {
        refreshDue = min(refreshDue, .now)
    }

    // MARK: Helpers

    /// Starts the connects that are due and a topology read when one is due.
    private func startWork() {
        helpers.removeAll { $0.hasEnded }
        let now = ContinuousClock.now
        if !refreshInFlight, refreshDue <= now {
            refreshInFlight = true
            let configuration = owner.redisConfiguration
            let endpoint = self.endpoint
            spawn { [owner] in
                .topology(Swift.Result { () throws(RedisError) in
                    try RedisConnection.fetchClusterTopology(configuration, endpoint: endpoint, shouldStop: { owner.isStopping })
                })
            }
        }
        for lane in [classic] + Array(shards.values) where lane.link.connection == nil && !lane.connecting && lane.retryAt <= now {
            if lane.address != nil, lane.link.machine.wanted.isEmpty { continue }
            lane.connecting = true
            var target = owner.redisConfiguration
            let address = lane.address
            if let address { target.endpoint = .tcp(host: address.host, port: address.port) }
            let configuration = target
            spawn { [owner] in
                .connected(address, Swift.Result { () throws(RedisError) in
                    try RedisConnection.connect(configuration, shouldStop: { owner.isStopping })
                })
            }
        }
    }

    private func spawn(_ work: @escaping @Sendable () -> Result) {
        guard let thread = OwnedThread.spawn({ [self] in
            let result = work()
            results.withLock { $0.append(result) }
            owner.signalWakeup()
        }) else {
            owner.log.error("cannot start a Redis connect thread; retrying")
            results.withLock { $0.append(.topology(.failure(RedisError(.connectionFailed, "no thread for a connect")))) }
            return
        }
        helpers.append(thread)
    }

    // MARK: Poll

    private func pollOnce() {
        let lanes = [classic] + Array(shards.values)
        let connected = lanes.filter { $0.link.connection != nil }
        var descriptors = connected.compactMap { lane in
            lane.link.connection.map { pollfd(fd: $0.fileDescriptor, events: lane.link.pollEvents, revents: 0) }
        }
        descriptors.append(pollfd(fd: owner.wakeupDescriptor, events: Int16(POLLIN), revents: 0))
        let now = ContinuousClock.now
        var timeout = connected.map(\.link.pollTimeout).min() ?? 1000
        for lane in lanes where lane.link.connection == nil && !lane.connecting {
            timeout = min(timeout, max(1, now.duration(to: lane.retryAt).roundedUpMilliseconds))
        }
        if !refreshInFlight { timeout = min(timeout, max(1, now.duration(to: refreshDue).roundedUpMilliseconds)) }
        let ready = poll(&descriptors, nfds_t(descriptors.count), Int32(clamping: max(1, timeout)))
        if ready < 0, errno != EINTR {
            owner.log.error("poll failed on the subscription", metadata: ["errno": "\(errno)"])
            usleep(10_000)
            return
        }
        if let last = descriptors.last, last.revents != 0 { owner.drainWakeups() }
        try? takeInputs(force: false)
        for (index, lane) in connected.enumerated() {
            do throws(RedisError) {
                try lane.link.service(revents: ready > 0 ? descriptors[index].revents : 0)
            } catch {
                lane.link.detach()
                reportDown(lane, error)
            }
        }
    }

    private func publishState() {
        var refused = classic.link.machine.refusedChannels
        for lane in shards.values { refused.formUnion(lane.link.machine.refusedChannels) }
        if let probeChannel { refused.remove(probeChannel) }
        if refused != publishedRefused {
            publishedRefused = refused
            owner.setRefused(refused)
        }
        let up = classic.link.connection != nil && shards.values.allSatisfy { $0.link.connection != nil || $0.link.machine.wanted.isEmpty }
        owner.setConnected(up && unplaced.isEmpty)
    }
}

/// A waiter split over several links: the original runs once every part is answered, with the
/// channels any part found refused. Used on the subscriber thread alone.
final class CompositeWaiter: @unchecked Sendable {
    // @unchecked: created, counted and run on the subscriber thread only.
    private let waiter: SubscriptionWaiter
    private var parts = 1
    private var refused: Set<ChannelName> = []

    init(_ waiter: SubscriptionWaiter) {
        self.waiter = waiter
    }

    /// One more part to wait for.
    func addPart() { parts += 1 }

    /// A waiter for one part.
    func part() -> SubscriptionWaiter {
        SubscriptionWaiter(channels: waiter.channels) { [self] refused in partDone(refused: refused) }
    }

    /// Every part is registered (the one held back since `init` is released).
    func arm() { partDone(refused: []) }

    func partDone(refused more: Set<ChannelName>) {
        refused.formUnion(more)
        parts -= 1
        if parts == 0 { waiter.action(refused) }
    }
}
