import CHiredis
import Logging
import SSEPOSIX
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Listens for failover announcements on one sentinel at a time, on a thread of its own, and
/// starts a new `SentinelTopology` generation when our master moves, so connections to the old
/// one are dropped at once instead of when the old master is demoted (about 10 s after a
/// `SENTINEL FAILOVER`, during which it still answers `ROLE master` and takes writes).
///
/// Two channels, because which sentinel says what first differs (*measured*, Redis 7.0): the
/// failover leader publishes `+promoted-slave` as soon as the replica is master but
/// `+switch-master` only when the failover ends, once every other replica has resynced or
/// `failover-timeout` passed (5 s in the test, 180 s by default); the other sentinels publish
/// `+switch-master` as soon as the leader's hello reaches them (within about 2 s).
///
/// A `poll()` loop over the sentinel's socket and a wake-up pipe, like `SubscriberThread`:
/// every wait has a deadline, a silent sentinel is found by PING (allowed in subscribed mode),
/// and on any failure the watcher moves on to the next sentinel, pausing with capped backoff
/// after a whole round failed. It never gives up. Each time it subscribes it first asks the
/// sentinel where the master is, so a switch announced while it was between sentinels is not
/// missed.
final class SentinelWatcher: @unchecked Sendable {
    // @unchecked: `stopping` is atomic and `wakeup` thread-safe; every other stored property is
    // immutable or used by the spawned thread alone.
    private let topology: SentinelTopology
    private let configuration: RedisConfiguration
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let wakeup: WakeupPipe?
    private let thread = Mutex<OwnedThread?>(nil)
    /// The index, in the topology's order, of the sentinel to watch next.
    private var next = 0
    private var backoff = ReconnectBackoff(baseMilliseconds: 100, capMilliseconds: 2000)
    /// Whether a whole round of sentinels failed since the last subscription (logged once).
    private var hasReportedRound = false

    /// PING after this long without traffic; no answer within as long again drops the sentinel.
    static let pingIntervalMilliseconds = 1000
    static let switchChannel = "+switch-master"
    static let promotedChannel = "+promoted-slave"

    init(topology: SentinelTopology, configuration: RedisConfiguration, logger: Logger) {
        self.topology = topology
        self.configuration = configuration
        self.logger = logger
        self.wakeup = try? WakeupPipe()
    }

    /// Spawns the thread (logged when the system refuses one: connections then follow a
    /// failover only when they break or meet `-READONLY`).
    func start() {
        guard wakeup != nil, let spawned = OwnedThread.spawn({ [self] in run() }) else {
            logger.error("cannot start the Sentinel watcher thread; failovers are noticed only when connections break")
            return
        }
        thread.withLock { $0 = spawned }
    }

    /// Asks the thread to stop and returns it, for the caller to wait for.
    func stop() -> OwnedThread? {
        stopping.store(true, ordering: .releasing)
        wakeup?.signal()
        return thread.withLock { $0 }
    }

    private var isStopping: Bool { stopping.load(ordering: .acquiring) }

    private func run() {
        while !isStopping {
            let sentinels = topology.sentinelsInOrder
            guard !sentinels.isEmpty else {
                pause(milliseconds: backoff.capMilliseconds)
                continue
            }
            let sentinel = sentinels[next % sentinels.count]
            do throws(RedisError) {
                try watch(sentinel)
            } catch {
                if !isStopping {
                    logger.debug("Sentinel watcher moves to the next sentinel", metadata: ["sentinel": "\(sentinel)", "error": "\(error)"])
                }
                next = (next + 1) % sentinels.count
                if next == 0 {
                    if !hasReportedRound, !isStopping {
                        hasReportedRound = true
                        logger.warning(
                            "no sentinel can be watched; failovers are noticed only when connections break, and the watcher keeps trying",
                            metadata: ["master": "\(topology.endpoint.masterName)", "error": "\(error)"]
                        )
                    }
                    pause(milliseconds: backoff.nextDelayMilliseconds())
                }
            }
        }
    }

    /// Sleeps up to `milliseconds`, waking early to stop.
    private func pause(milliseconds: Int) {
        guard let wakeup else { return }
        var descriptor = pollfd(fd: wakeup.readDescriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, Int32(clamping: max(1, milliseconds)))
        wakeup.drain()
    }

    /// Subscribes on `sentinel` and handles what it says until it fails or the watcher stops.
    private func watch(_ sentinel: SentinelAddress) throws(RedisError) {
        guard let wakeup else { return }
        let endpoint = topology.endpoint
        let connection = try RedisConnection.connect(SentinelResolver.sentinelConfiguration(configuration, endpoint: endpoint, sentinel: sentinel))
        let interval = Duration.milliseconds(Self.pingIntervalMilliseconds)
        let reply = try connection.command(["SENTINEL", "get-master-addr-by-name", endpoint.masterName], deadline: .now.advanced(by: interval))
        if case .master(let master) = SentinelReplyDecoder.masterAddress(reply) { topology.check(master: master) }
        try connection.append([Array("SUBSCRIBE".utf8), Array(Self.switchChannel.utf8), Array(Self.promotedChannel.utf8)])
        try connection.flush(deadline: .now.advanced(by: interval))
        var subscribed = false
        var lastTraffic = ContinuousClock.now
        var pingSentAt: ContinuousClock.Instant?
        while !isStopping {
            var events = Int16(POLLIN)
            if connection.hasPendingOutput { events |= Int16(POLLOUT) }
            var descriptors = [
                pollfd(fd: connection.fileDescriptor, events: events, revents: 0),
                pollfd(fd: wakeup.readDescriptor, events: Int16(POLLIN), revents: 0),
            ]
            let deadline = (pingSentAt ?? lastTraffic).advanced(by: interval)
            let ready = poll(&descriptors, 2, Int32(clamping: max(1, ContinuousClock.now.duration(to: deadline).roundedUpMilliseconds)))
            if ready < 0, errno != EINTR { throw RedisError(.connectionLost, "poll failed (errno \(errno))") }
            if descriptors[1].revents != 0 { wakeup.drain() }
            if descriptors[0].revents & Int16(POLLIN | POLLERR | POLLHUP | POLLNVAL) != 0 {
                try connection.readAvailable()
                lastTraffic = .now
                pingSentAt = nil
                if try handleReplies(connection, sentinel: sentinel), !subscribed {
                    subscribed = true
                    hasReportedRound = false
                    backoff.reset()
                    logger.debug("Sentinel watcher subscribed", metadata: ["sentinel": "\(sentinel)", "master": "\(endpoint.masterName)"])
                }
            }
            try connection.writeAvailable()
            let now = ContinuousClock.now
            if let pingSentAt {
                if pingSentAt.duration(to: now) > interval { throw RedisError(.timedOut, "no answer to PING within \(interval)") }
            } else if lastTraffic.duration(to: now) >= interval {
                try connection.append([Array("PING".utf8)])
                try connection.writeAvailable()
                pingSentAt = now
            }
        }
    }

    /// Acts on every complete reply read; true once the subscription was confirmed.
    private func handleReplies(_ connection: RedisConnection, sentinel: SentinelAddress) throws(RedisError) -> Bool {
        var confirmed = false
        while let raw = try connection.takeBufferedRawReply() {
            defer { freeReplyObject(raw) }
            switch SubscriberReply(raw.pointee) {
            case .message(let message):
                let name = topology.endpoint.masterName
                let announced = message.channel == Self.switchChannel
                    ? SentinelReplyDecoder.switchMaster(message.payload, masterName: name)
                    : message.channel == Self.promotedChannel ? SentinelReplyDecoder.promotedReplica(message.payload, masterName: name) : nil
                guard let master = announced else { continue }
                // The leader's later +switch-master for a master already announced moves nothing.
                guard topology.announce(master) else { continue }
                logger.notice(
                    "Sentinel announced a new master; reconnecting to it",
                    metadata: ["sentinel": "\(sentinel)", "master": "\(topology.endpoint.masterName)", "address": "\(master)"]
                )
            case .subscribed:
                confirmed = true
            case .pong:
                continue
            case .unsubscribed:
                throw RedisError(.protocolViolation, "the sentinel ended the subscription")
            case .error(let text):
                throw RedisError(serverReply: SentinelReplyDecoder.quoted(text))
            case .unexpected(let what):
                throw RedisError(.protocolViolation, "unexpected reply from the sentinel: \(what)")
            }
        }
        return confirmed
    }
}
