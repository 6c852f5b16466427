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
/// serves a wanted channel (`SSUBSCRIBE`, one slot per command), plus the wake-up pipe. With
/// `pubsub=sharded` the classic link never connects: waiters need only the shards, and the
/// subscription counts as connected while every shard with a wanted channel is.
///
/// Where events with history travel decides what follows which link. With history in one slot
/// they travel by classic `PUBLISH`: waiters (`whenSubscribed`), readiness and the reconnect
/// catch-up follow the classic link, and the sharded links add what apps `SPUBLISH`, best effort
/// across a move as in Redis's own pub/sub. With history per channel they travel by `SPUBLISH`
/// (`Configuration.historyOnShards`): waiters also need each channel's shard (`ShardWait`), a
/// channel confirmed again on its shard after a gap is reported for a catch-up
/// (`subscriber(_:resubscribed:)`, before any message the new subscription brings), and a
/// shard's `-NOPERM` is a refusal; readiness still follows the classic link (with
/// `pubsub=sharded`, the shards).
///
/// Connects and `CLUSTER SLOTS` reads run on short-lived threads of their own (at most
/// `maximumConnectsInFlight` at once) and hand their result back through the wake-up pipe, so a
/// shard that does not answer never stalls delivery from the others. A channel a shard stops
/// serving (its `sunsubscribe` push, or an error answering its `SSUBSCRIBE`) is placed again
/// from a fresh topology; a channel displaced again from the same master waits out a growing
/// delay first, and topology reads back off while any channel cannot be placed, so a confused or
/// hostile cluster costs bounded work. The topology is also read every `refreshInterval`, and
/// `verifyReads` times `verifyInterval` apart after a move (a node that answered before it
/// learned of a failover does not keep a channel on the old master for long).
final class ClusterSubscriberThread: @unchecked Sendable {
    // @unchecked: after `start()` every stored property but `results` (a Mutex) is used by the
    // spawned thread alone.
    private let owner: RedisSubscriber
    private let endpoint: ClusterEndpoint
    private let classic: Lane
    /// Sharded links by the master they go to.
    private var shards: [SentinelAddress: Lane] = [:]
    private var topology: ClusterTopology?
    /// The sharded channels wanted (every wanted channel but the probe's).
    private var wanted: Set<ChannelName> = []
    /// Where each placed channel is subscribed.
    private var placement: [ChannelName: SentinelAddress] = [:]
    /// Channels a master displaced: not placed on that master again before `notBefore`.
    private var displacedFrom: [ChannelName: Displacement] = [:]
    private var refreshInFlight = false
    private var refreshDue: ContinuousClock.Instant = .now
    /// The earliest a read may start after a failed or incomplete one.
    private var refreshEarliest: ContinuousClock.Instant = .now
    private var refreshBackoff: ReconnectBackoff
    /// Reads still to come soon after a move (a displacement, a shard down): each confirms the
    /// last, so a topology one node read before it learned of the move (a channel placed on the
    /// old master, which may take it as a replica and then never get its events) is corrected
    /// within `verifyInterval`, not at the next `refreshInterval`.
    private var verifyReadsLeft = 0
    /// When the last topology was adopted.
    private var lastAdopted: ContinuousClock.Instant?
    private var publishedRefused: Set<ChannelName> = []
    /// Events with history travel by `SPUBLISH` (`Configuration.historyOnShards`).
    private let historyOnShards: Bool
    /// `pubsub=sharded`: no classic link.
    private let shardedOnly: Bool
    /// What `setConnected` was last told (sharded-only), and whether it was ever true.
    private var shardsReady = false
    private var shardsWereReady = false
    /// Wanted sharded channels confirmed on a shard at least once since they were wanted: a
    /// later confirmation is a resubscription after a gap.
    private var confirmedOnce: Set<ChannelName> = []
    /// With `historyOnShards`: waiters that need a channel confirmed on its shard, by channel.
    private var shardWaits: [ChannelName: [ShardWait]] = [:]
    /// `ShardWait`s that needed a shard when made, oldest first (so in deadline order), from
    /// `openWaitsHead` on.
    private var openWaits: [ShardWait] = []
    private var openWaitsHead = 0
    private var helpers: [OwnedThread] = []
    private let results = Mutex<[Result]>([])

    /// How often the topology is read again without a reason.
    static let refreshInterval: Duration = .seconds(30)
    /// How soon the topology is read again after a move, `verifyReads` times.
    static let verifyInterval: Duration = .seconds(1)
    static let verifyReads = 3
    /// Most shards a node subscribes on.
    static let maximumShards = 1024
    /// Most connects (and topology reads) running at once.
    static let maximumConnectsInFlight = 16
    /// How long a waiter waits for the shards (`historyOnShards`) before it runs anyway.
    static let shardWaitLimit: Duration = .seconds(10)

    /// A link with its connect state.
    private final class Lane {
        let link: SubscriberLink
        let address: SentinelAddress?
        var connecting = false
        var retryAt: ContinuousClock.Instant = .now
        var backoff: ReconnectBackoff
        var hasReportedDown = false
        /// When the current connection came up (its backoff resets once it has lasted).
        var upSince: ContinuousClock.Instant?

        init(link: SubscriberLink, address: SentinelAddress?, backoff: ReconnectBackoff) {
            self.link = link
            self.address = address
            self.backoff = backoff
        }
    }

    /// A channel's last displacement from a master.
    private struct Displacement {
        var master: SentinelAddress
        var notBefore: ContinuousClock.Instant
        var backoff: ReconnectBackoff
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
        self.refreshBackoff = Self.backoff(owner)
        self.historyOnShards = owner.tuning.historyOnShards
        self.shardedOnly = endpoint.pubsub == .sharded
        self.classic = Lane(
            link: SubscriberLink(owner: owner, verbs: .classic, probe: owner.probe.map { SubscriberProbe(owner: owner, shared: $0) }),
            address: nil,
            backoff: Self.backoff(owner)
        )
    }

    private static func backoff(_ owner: RedisSubscriber) -> ReconnectBackoff {
        ReconnectBackoff(baseMilliseconds: owner.tuning.backoffBaseMilliseconds, capMilliseconds: owner.tuning.backoffCapMilliseconds)
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
        takeInputs(force: true)
        while !owner.isStopping {
            takeResults()
            takeInputs(force: false)
            startWork()
            pollOnce()
            placeDisplaced()
            takeConfirmations()
            closeIdleShards()
            publishState()
        }
    }

    // MARK: Inputs

    /// Takes in what the node wants: the classic link gets everything (waiters included), the
    /// shards the sharded channels. Each step stands alone, so one that fails loses no other.
    private func takeInputs(force: Bool) {
        if owner.takeSlotMoved(), verifyReadsLeft == 0 {
            // A -MOVED elsewhere in the process (any publisher can cause those): verify reads, the
            // first a `verifyInterval` after the last read at the soonest, so a stream of them
            // costs at most one read per interval. While verify reads are due, nothing more.
            verifyReadsLeft = Self.verifyReads
            let soonest = max(refreshEarliest, lastAdopted.map { $0.advanced(by: Self.verifyInterval) } ?? .now)
            refreshDue = min(refreshDue, soonest)
        }
        let (all, added, removed, waiters) = owner.takeInputs(force: force)
        var toRemove = removed
        var toAdd = added
        if let all {
            toRemove = Array(wanted.subtracting(all))
            toAdd = Array(all)
        }
        for channel in toRemove where wanted.remove(channel) != nil {
            displacedFrom.removeValue(forKey: channel)
            confirmedOnce.remove(channel)
            if let address = placement.removeValue(forKey: channel) { change(address, removing: channel) }
            for wait in shardWaits.removeValue(forKey: channel) ?? [] { wait.shardAnswered(channel) }
        }
        for channel in toAdd where channel != probeChannel && wanted.insert(channel).inserted {
            place(channel)
        }
        var classicWaiters = historyOnShards || shardedOnly ? waiters.map(waitingForShards) : waiters
        if shardedOnly {
            // No classic link to answer them (and shards never refuse): only the shards count.
            for waiter in classicWaiters { waiter.action([]) }
            classicWaiters = []
        }
        do throws(RedisError) {
            try classic.link.take(wanted: all, added: added, removed: removed, waiters: classicWaiters)
        } catch {
            classic.link.detach()
            reportDown(classic, error)
        }
    }

    /// `waiter` as the classic link's part of a `ShardWait` that also needs each of its
    /// channels confirmed on its shard.
    private func waitingForShards(_ waiter: SubscriptionWaiter) -> SubscriptionWaiter {
        let remaining = waiter.channels.filter { wanted.contains($0) && !isConfirmedOnShard($0) }
        // With history on the shards the classic link carries none of it: at the deadline the
        // wait goes on without its answer too.
        let wait = ShardWait(
            remaining: remaining, deadline: .now.advanced(by: Self.shardWaitLimit), needsClassic: !historyOnShards, action: waiter.action
        )
        for channel in remaining { shardWaits[channel, default: []].append(wait) }
        // Its deadline is kept while a shard must answer, or while the classic answer is not needed
        // (it goes on at the deadline without it).
        if !remaining.isEmpty || !wait.needsClassic { openWaits.append(wait) }
        return SubscriptionWaiter(channels: waiter.channels) { refused in wait.classicAnswered(refused: refused) }
    }

    private func isConfirmedOnShard(_ channel: ChannelName) -> Bool {
        guard let address = placement[channel], let lane = shards[address] else { return false }
        return lane.link.machine.isSubscribedNow(channel)
    }

    /// Confirmations from a shard, told by its link before the messages that follow them: waiters
    /// that needed them run, and with `historyOnShards` a channel confirmed again after a gap is
    /// reported at once, to be caught up from history (its catch-up then reaches the event loops
    /// ahead of the live events after the confirmation).
    private func confirmed(_ channels: [ChannelName], on address: SentinelAddress) {
        var resubscribed: [ChannelName] = []
        for channel in channels where placement[channel] == address && wanted.contains(channel) {
            if !confirmedOnce.insert(channel).inserted { resubscribed.append(channel) }
            for wait in shardWaits.removeValue(forKey: channel) ?? [] { wait.shardAnswered(channel) }
        }
        guard historyOnShards, !resubscribed.isEmpty else { return }
        owner.log.info("channels subscribed again on their shards; catching their streams up", metadata: ["channels": "\(resubscribed.count)"])
        owner.delegate?.subscriber(owner, resubscribed: resubscribed.map(\.text))
    }

    /// Waiters past their deadline run (their channels are then caught up at their first
    /// confirmation).
    private func takeConfirmations() {
        let now = ContinuousClock.now
        while openWaitsHead < openWaits.count {
            let oldest = openWaits[openWaitsHead]
            guard oldest.hasRun || (oldest.remaining.isEmpty && oldest.needsClassic) || oldest.deadline <= now else { break }
            openWaitsHead += 1
            if openWaitsHead == openWaits.count || openWaitsHead > 1024 {
                openWaits.removeFirst(openWaitsHead)
                openWaitsHead = 0
            }
            guard !oldest.hasRun else { continue }
            guard !oldest.remaining.isEmpty else {
                // Only the classic answer is missing, and it is not needed past the deadline.
                if oldest.deadline <= now { oldest.expire() }
                continue
            }
            owner.log.warning("a shard has not confirmed a channel a resume waits for; the resume goes on", metadata: ["channels": "\(oldest.remaining.count)"])
            for channel in oldest.remaining {
                confirmedOnce.insert(channel)
                shardWaits[channel]?.removeAll { $0 === oldest }
                if shardWaits[channel]?.isEmpty == true { shardWaits.removeValue(forKey: channel) }
            }
            oldest.expire()
        }
    }

    /// Tells the link at `address` to drop `channel` (its `SUNSUBSCRIBE` if subscribed there).
    private func change(_ address: SentinelAddress, removing channel: ChannelName) {
        guard let lane = shards[address] else { return }
        do throws(RedisError) {
            try lane.link.take(wanted: nil, added: [], removed: [channel], waiters: [])
        } catch {
            lane.link.detach()
            reportDown(lane, error)
        }
    }

    /// Puts `channel` on the link of the shard serving its slot; false (left unplaced) when no
    /// topology serves it, the shard limit is reached, or it was just displaced from that master.
    @discardableResult
    private func place(_ channel: ChannelName) -> Bool {
        guard let topology, let master = topology.master(forSlot: ClusterSlot.slot(of: channel.bytes)) else { return false }
        if let displaced = displacedFrom[channel], displaced.master == master, ContinuousClock.now < displaced.notBefore { return false }
        guard let lane = lane(for: master) else { return false }
        placement[channel] = master
        do throws(RedisError) {
            try lane.link.take(wanted: nil, added: [channel], removed: [], waiters: [])
        } catch {
            lane.link.detach()
            reportDown(lane, error)
        }
        return true
    }

    private func lane(for master: SentinelAddress) -> Lane? {
        if let lane = shards[master] { return lane }
        guard shards.count < Self.maximumShards else { return nil }
        let link = SubscriberLink(owner: owner, verbs: .sharded, probe: nil)
        // Runs on this thread, inside the link's read (the link is this thread's alone).
        link.onConfirmed = { [unowned self] channels in confirmed(channels, on: master) }
        let lane = Lane(link: link, address: master, backoff: Self.backoff(owner))
        shards[master] = lane
        return lane
    }

    /// Wanted sharded channels with no shard.
    private var unplaced: [ChannelName] { wanted.filter { placement[$0] == nil } }

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
                    adopt(fresh)
                case .failure(let error):
                    owner.log.warning("Redis Cluster topology read failed", metadata: ["error": "\(error)"])
                    backOffRefresh()
                }
            case .connected(let address, let outcome):
                guard let lane = address.map({ shards[$0] }) ?? classic else { continue }
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
        lane.hasReportedDown = false
        lane.upSince = .now
        owner.log.info(
            "Redis subscription connected",
            metadata: [
                "redis": "\(owner.redisConfiguration)", "link": "\(lane.address.map { "shard \($0)" } ?? "classic")",
                "channels": "\(lane.link.machine.wanted.count)",
            ]
        )
        // The classic link's (re)connect is the subscription's; with history in one slot it
        // carries every event with history, and streams catch up across it.
        if lane.address == nil {
            owner.setConnected(true)
            owner.delegate?.subscriberDidConnect(owner)
        }
    }

    private func reportDown(_ lane: Lane, _ error: RedisError) {
        // A connection that did not last one ping interval does not reset the backoff.
        if let upSince = lane.upSince, upSince.duration(to: .now) >= .milliseconds(max(1, owner.tuning.pingIntervalMilliseconds)) {
            lane.backoff.reset()
        }
        lane.upSince = nil
        lane.retryAt = .now.advanced(by: .milliseconds(lane.backoff.nextDelayMilliseconds()))
        if lane.address == nil {
            owner.setConnected(false)
        } else {
            // A shard that fails may have failed over: ask where its slots are now.
            verifyReadsLeft = Self.verifyReads
            refreshSoon()
        }
        if !lane.hasReportedDown {
            lane.hasReportedDown = true
            owner.log.warning(
                "Redis subscription down, retrying with backoff",
                metadata: ["error": "\(error)", "link": "\(lane.address.map { "shard \($0)" } ?? "classic")"]
            )
            if lane.address == nil { owner.delegate?.subscriber(owner, didDisconnectWith: error) }
        } else {
            owner.log.debug("Redis reconnect failed", metadata: ["error": "\(error)", "attempt": "\(lane.backoff.failures)"])
        }
    }

    /// A fresh topology: every sharded channel goes where its slot is served now. The next read
    /// is in `refreshInterval`, or backs off while some channel cannot be placed.
    private func adopt(_ fresh: ClusterTopology) {
        topology = fresh
        lastAdopted = .now
        for (channel, address) in placement {
            guard fresh.master(forSlot: ClusterSlot.slot(of: channel.bytes)) != address else { continue }
            placement.removeValue(forKey: channel)
            change(address, removing: channel)
        }
        let now = ContinuousClock.now
        var waiting = false
        for channel in unplaced where !place(channel) {
            waiting = true
            if let displaced = displacedFrom[channel], displaced.notBefore > now {
                refreshEarliest = max(refreshEarliest, min(displaced.notBefore, now.advanced(by: Self.refreshInterval)))
            }
        }
        if waiting {
            owner.log.debug("some sharded channels have no shard yet", metadata: ["channels": "\(unplaced.count)"])
            backOffRefresh()
        } else {
            refreshBackoff.reset()
            refreshEarliest = now
            if verifyReadsLeft > 0 {
                verifyReadsLeft -= 1
                refreshDue = now.advanced(by: Self.verifyInterval)
            } else {
                refreshDue = now.advanced(by: Self.refreshInterval)
            }
        }
    }

    private func backOffRefresh() {
        let next = ContinuousClock.now.advanced(by: .milliseconds(refreshBackoff.nextDelayMilliseconds()))
        refreshEarliest = max(refreshEarliest, next)
        refreshDue = refreshEarliest
    }

    /// Channels the shards said they do not serve go back to the topology; the same master
    /// gets each of them again only after a delay that doubles with every displacement.
    private func placeDisplaced() {
        var count = 0
        let now = ContinuousClock.now
        for (address, lane) in shards {
            for channel in lane.link.takeDisplaced() where placement[channel] == address {
                placement.removeValue(forKey: channel)
                change(address, removing: channel)
                var displaced = displacedFrom[channel] ?? Displacement(master: address, notBefore: now, backoff: Self.backoff(owner))
                if displaced.master != address { displaced = Displacement(master: address, notBefore: now, backoff: Self.backoff(owner)) }
                displaced.notBefore = now.advanced(by: .milliseconds(displaced.backoff.nextDelayMilliseconds()))
                displacedFrom[channel] = displaced
                count += 1
            }
        }
        guard count > 0 else { return }
        owner.log.info("a shard does not serve some channels; reading the cluster topology", metadata: ["channels": "\(count)"])
        verifyReadsLeft = Self.verifyReads
        refreshSoon()
    }

    private func closeIdleShards() {
        for (address, lane) in shards where lane.link.machine.wanted.isEmpty && !lane.connecting {
            guard lane.link.machine.commandsInFlight == 0 else { continue }
            lane.link.detach()
            shards.removeValue(forKey: address)
        }
    }

    /// A read as soon as the backoff allows.
    private func refreshSoon() {
        refreshDue = min(refreshDue, max(.now, refreshEarliest))
    }

    // MARK: Helpers

    /// Starts the connects that are due and a topology read when one is due, at most
    /// `maximumConnectsInFlight` at once.
    private func startWork() {
        helpers.removeAll { $0.hasEnded }
        let now = ContinuousClock.now
        if !refreshInFlight, refreshDue <= now, helpers.count < Self.maximumConnectsInFlight {
            refreshInFlight = true
            let configuration = owner.redisConfiguration
            let endpoint = self.endpoint
            spawn(failure: .topology(.failure(RedisError(.connectionFailed, "no thread for a topology read")))) { [owner] in
                .topology(Swift.Result { () throws(RedisError) in
                    try RedisConnection.fetchClusterTopology(configuration, endpoint: endpoint, shouldStop: { owner.isStopping })
                })
            }
        }
        for lane in (shardedOnly ? [] : [classic]) + Array(shards.values) where lane.link.connection == nil && !lane.connecting && lane.retryAt <= now {
            guard helpers.count < Self.maximumConnectsInFlight else { break }
            if lane.address != nil, lane.link.machine.wanted.isEmpty { continue }
            lane.connecting = true
            var target = owner.redisConfiguration
            let address = lane.address
            if let address { target.endpoint = .tcp(host: address.host, port: address.port) }
            let configuration = target
            spawn(failure: .connected(address, .failure(RedisError(.connectionFailed, "no thread for a connect")))) { [owner] in
                .connected(address, Swift.Result { () throws(RedisError) in
                    try RedisConnection.connect(configuration, shouldStop: { owner.isStopping })
                })
            }
        }
    }

    /// Runs `work` on a thread of its own and hands its result back; `failure` when no thread.
    private func spawn(failure: Result, _ work: @escaping @Sendable () -> Result) {
        guard let thread = OwnedThread.spawn({ [self] in
            let result = work()
            results.withLock { $0.append(result) }
            owner.signalWakeup()
        }) else {
            owner.log.error("cannot start a Redis connect thread; retrying")
            results.withLock { $0.append(failure) }
            return
        }
        helpers.append(thread)
    }

    // MARK: Poll

    private func pollOnce() {
        let lanes = (shardedOnly ? [] : [classic]) + Array(shards.values)
        let connected = lanes.filter { $0.link.connection != nil }
        var descriptors = connected.compactMap { lane in
            lane.link.connection.map { pollfd(fd: $0.fileDescriptor, events: lane.link.pollEvents, revents: 0) }
        }
        descriptors.append(pollfd(fd: owner.wakeupDescriptor, events: Int16(POLLIN), revents: 0))
        let now = ContinuousClock.now
        var timeout = connected.map(\.link.pollTimeout).min() ?? 1000
        // With every helper busy, the next start waits for one to end (it wakes the loop).
        // A resume waiting for the shards goes on at its deadline.
        if openWaitsHead < openWaits.count {
            timeout = min(timeout, max(1, now.duration(to: openWaits[openWaitsHead].deadline).roundedUpMilliseconds))
        }
        if helpers.count < Self.maximumConnectsInFlight {
            for lane in lanes where lane.link.connection == nil && !lane.connecting {
                timeout = min(timeout, max(1, now.duration(to: lane.retryAt).roundedUpMilliseconds))
            }
            if !refreshInFlight { timeout = min(timeout, max(1, now.duration(to: refreshDue).roundedUpMilliseconds)) }
        }
        let ready = poll(&descriptors, nfds_t(descriptors.count), Int32(clamping: max(1, timeout)))
        if ready < 0, errno != EINTR {
            owner.log.error("poll failed on the subscription", metadata: ["errno": "\(errno)"])
            usleep(10_000)
            return
        }
        if let last = descriptors.last, last.revents != 0 { owner.drainWakeups() }
        takeInputs(force: false)
        for (index, lane) in connected.enumerated() where index < descriptors.count - 1 {
            do throws(RedisError) {
                try lane.link.service(revents: ready > 0 ? descriptors[index].revents : 0)
            } catch {
                lane.link.detach()
                reportDown(lane, error)
            }
        }
    }

    /// Refused channels are the classic link's: a sharded link never refuses (its errors only
    /// move a channel), so an ACL without `ssubscribe` costs sharded events, not streams.
    private func publishState() {
        if shardedOnly { publishShardsReady() }
        var refused = classic.link.machine.refusedChannels
        if let probeChannel { refused.remove(probeChannel) }
        if refused != publishedRefused {
            publishedRefused = refused
            owner.setRefused(refused)
        }
    }

    /// Sharded-only: the subscription is connected while the topology is known and every shard
    /// with a wanted channel is connected; its first such moment (and each after a loss) is the
    /// subscription's connect. A channel no shard takes (an ACL without it, a slot no master
    /// serves, one waiting out a move) costs only that channel, not the node's readiness. Work
    /// in proportion to the shards, not the channels.
    private func publishShardsReady() {
        let ready = topology != nil
            && shards.values.allSatisfy { $0.link.machine.wanted.isEmpty || $0.link.connection != nil }
        guard ready != shardsReady else { return }
        shardsReady = ready
        owner.setConnected(ready)
        if ready {
            shardsWereReady = true
            owner.delegate?.subscriberDidConnect(owner)
        } else if shardsWereReady {
            owner.delegate?.subscriber(owner, didDisconnectWith: RedisError(.connectionFailed, "a shard of the subscription is down"))
        }
    }
}
