import CHiredis
import Logging
import SSEPOSIX
import SSEWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The subscriber's thread: a `poll()` loop over the Redis socket and the wake-up pipe that
/// feeds the connection's `SubscriberLink` (its `SubscriptionStateMachine`, liveness, probe).
///
/// Nothing here blocks without a deadline: connects are bounded by the connect timeout,
/// `AUTH`/`SELECT` by the command timeout, writes are non-blocking (a stall longer than the
/// ping interval drops the connection) and a silent connection is found by PING.
final class SubscriberThread: @unchecked Sendable {
    // @unchecked: after `start()` every stored property is used by the spawned thread alone.
    private let owner: RedisSubscriber
    /// For a `.sentinel` endpoint: the process's topology, shared with the watcher.
    private let topology: SentinelTopology?
    /// The topology's generation when the last connect began.
    private var attemptGeneration: UInt64 = 0
    private let link: SubscriberLink
    private var backoff: ReconnectBackoff
    private var hasReportedDown = false
    private var publishedRefused: Set<ChannelName> = []

    init(owner: RedisSubscriber, topology: SentinelTopology?) {
        self.owner = owner
        self.topology = topology
        let tuning = owner.tuning
        self.link = SubscriberLink(owner: owner, verbs: .classic, probe: owner.probe.map { SubscriberProbe(owner: owner, shared: $0) })
        self.backoff = ReconnectBackoff(baseMilliseconds: tuning.backoffBaseMilliseconds, capMilliseconds: tuning.backoffCapMilliseconds)
    }

    /// Spawns the thread; nil (and logged) if the system refused one.
    func start() -> OwnedThread? {
        guard let thread = OwnedThread.spawn({ [self] in run() }) else {
            owner.log.critical("cannot start the Redis subscriber thread")
            return nil
        }
        return thread
    }

    private func run() {
        defer {
            link.detach()
            owner.setConnected(false)
        }
        while !owner.isStopping {
            guard let connection = link.connection else {
                connect()
                continue
            }
            if connection.isTopologyStale {
                followNewMaster()
                continue
            }
            do throws(RedisError) {
                try serviceConnection(connection)
            } catch {
                drop(error)
            }
        }
    }

    private func connect() {
        do throws(RedisError) {
            try takeInputs(force: true)
            attemptGeneration = topology?.generation ?? 0
            let fresh = try RedisConnection.connect(owner.redisConfiguration, topology: topology, shouldStop: { [owner] in owner.isStopping })
            try link.attach(fresh)
            backoff.reset()
            hasReportedDown = false
            owner.setConnected(true)
            owner.log.info(
                "Redis subscription connected",
                metadata: [
                    "redis": "\(owner.redisConfiguration)", "channels": "\(link.machine.wanted.count)",
                    "master": "\(fresh.sentinelStamp.map { "\($0.master)" } ?? "-")",
                ]
            )
            owner.delegate?.subscriberDidConnect(owner)
        } catch {
            drop(error)
        }
    }

    /// The master may have changed (Sentinel announced a switch, or a command met `-READONLY`):
    /// drop the connection and resolve again at once, without waiting out any backoff, so
    /// delivery resumes within one resolve and connect.
    private func followNewMaster() {
        link.detach()
        backoff.reset()
        let error = RedisError(.connectionLost, "Sentinel: the master changed")
        owner.setConnected(false)
        hasReportedDown = true
        owner.log.notice("Redis subscription follows a new master", metadata: ["redis": "\(owner.redisConfiguration)"])
        owner.delegate?.subscriber(owner, didDisconnectWith: error)
    }

    private func drop(_ error: RedisError) {
        link.detach()
        reportDown(error)
        waitForRetry()
    }

    private func reportDown(_ error: RedisError) {
        owner.setConnected(false)
        if !hasReportedDown {
            hasReportedDown = true
            owner.log.warning("Redis subscription down, retrying with backoff", metadata: ["error": "\(error)"])
            owner.delegate?.subscriber(owner, didDisconnectWith: error)
        } else {
            owner.log.debug("Redis reconnect failed", metadata: ["error": "\(error)", "attempt": "\(backoff.failures)"])
        }
    }

    /// Sleeps for the next backoff delay, waking early if asked to stop. Wanted-set changes
    /// and new waiters are still taken in, so waiters for channels no longer wanted run.
    private func waitForRetry() {
        let delay = backoff.nextDelayMilliseconds()
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(delay))
        while !owner.isStopping {
            if let topology, topology.generation != attemptGeneration {
                // A new master was announced: try it now.
                backoff.reset()
                return
            }
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { return }
            var descriptor = pollfd(fd: owner.wakeupDescriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, Int32(clamping: max(1, remaining.roundedUpMilliseconds)))
            owner.drainWakeups()
            try? takeInputs(force: false)
        }
    }

    private func takeInputs(force: Bool) throws(RedisError) {
        let (wanted, added, removed, waiters) = owner.takeInputs(force: force)
        try link.take(wanted: wanted, added: added, removed: removed, waiters: waiters)
    }

    private func serviceConnection(_ connection: RedisConnection) throws(RedisError) {
        var descriptors = [
            pollfd(fd: connection.fileDescriptor, events: link.pollEvents, revents: 0),
            pollfd(fd: owner.wakeupDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        let ready = poll(&descriptors, 2, Int32(clamping: link.pollTimeout))
        if ready < 0 {
            guard errno == EINTR else { throw RedisError(.connectionLost, "poll failed (errno \(errno))") }
            return
        }
        if descriptors[1].revents != 0 {
            owner.drainWakeups()
        }
        try takeInputs(force: false)
        try link.service(revents: descriptors[0].revents)
        publishRefused()
    }

    private func publishRefused() {
        var refused = link.machine.refusedChannels
        if let probe = link.probe { refused.remove(probe.channel) }
        guard refused != publishedRefused else { return }
        publishedRefused = refused
        owner.setRefused(refused)
    }
}
