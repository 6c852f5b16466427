import Logging
import SSEPOSIX
import Synchronization

/// Sends each command to the Redis Cluster master serving its key's slot, over about one
/// connection per master, following slot migrations and failovers.
///
/// Every connection is a `RedisCommandClient` routed to a *representative* slot (it follows that
/// slot's master by itself); which client serves a slot is decided by
/// `ClusterRoutingStateMachine` from the cluster's topology (`CLUSTER SLOTS`, read through the
/// seeds on a helper thread: at start, after every `-MOVED`, every 30 s while commands flow) and
/// from what `-MOVED` replies said since. At most `maximumClients` clients are made.
///
/// Redirections (the cluster specification's "Redirection and resharding"):
/// - `-MOVED slot host:port`: the slot is recorded as served there at once, and the command is
///   sent again to the client of that master (made if needed), at most twice; after that the
///   `-MOVED` reply is the caller's. A `-MOVED` means the command did not run, so resending it
///   never runs it twice. One that names no valid slot or address is the caller's at once (and
///   the topology is read again).
/// - `-ASK`, `-TRYAGAIN`, `-CLUSTERDOWN` are handed to the caller as they are (no `ASKING`): all
///   are transient (`RedisError.transientServerCodes`), a caller retries after a short wait, and
///   a slot mid-migration settles within moments.
///
/// For an endpoint that is not a cluster it is one `RedisCommandClient`, and `key` is ignored.
///
/// Nothing blocks the caller's thread (a send takes a lock for a moment; a refused command's
/// completion runs on the caller's thread); completions run on client threads. Bounded: at most
/// `maximumClients` clients of `lanes` lanes of `maximumPending` commands each, two resends per
/// command, `ClusterRoutingStateMachine.maximumOverrides` recorded redirections, one topology
/// read in flight.
public final class ClusterCommandRouter: RedisCommandSending {
    public typealias Completion = RedisCommandClient.Completion

    /// Most times one command is sent again after a `-MOVED`.
    static let maximumResends = 2

    private struct State {
        var machine: ClusterRoutingStateMachine
        /// The clients by representative slot.
        var clients: [Int: RedisCommandClient] = [:]
        /// `-MOVED` replies seen (for tests and logs).
        var redirections = 0
        /// Topology reads failed in a row.
        var failedReads = 0
    }

    /// A command on its way, kept for resending.
    private struct Command: Sendable {
        let arguments: [[UInt8]]
        let slot: Int?
        let lane: Int
        let completion: Completion
    }

    private let redis: RedisConfiguration
    private let logger: Logger
    private let maximumPending: Int
    private let retryIntervalMilliseconds: Int
    private let lanes: Int
    /// Told of every `-MOVED` (see `init`).
    private let onMoved: (@Sendable () -> Void)?
    /// The only client when `redis` is not a cluster.
    private let single: RedisCommandClient?
    /// The seeds, when `redis` is a cluster.
    private let endpoint: ClusterEndpoint?
    private let state: Mutex<State>

    /// - Parameters:
    ///   - redis: a cluster (`redis+cluster://`): commands are routed by key; anything else:
    ///     one client for every command.
    ///   - maximumPending: commands each lane of each client may hold (see `RedisCommandClient`).
    ///   - retryIntervalMilliseconds: each client's wait after a failed connect, and the wait
    ///     after a failed topology read.
    ///   - lanes: each client's lanes (see `RedisCommandClient`).
    ///   - maximumClients: most clients (connections) on a cluster; past that, a master whose
    ///     slots have no client of their own is reached through a redirection.
    ///   - onMoved: runs (on a client's thread) at every `-MOVED` reply, for whoever else in the
    ///     process follows the topology (the subscription: `RedisSubscriber.clusterSlotMoved()`).
    public init(
        redis: RedisConfiguration,
        logger: Logger,
        maximumPending: Int = 65_536,
        retryIntervalMilliseconds: Int = 500,
        lanes: Int = 1,
        maximumClients: Int = 64,
        onMoved: (@Sendable () -> Void)? = nil
    ) {
        self.redis = redis
        self.logger = logger
        self.onMoved = onMoved
        self.maximumPending = maximumPending
        self.retryIntervalMilliseconds = retryIntervalMilliseconds
        self.lanes = lanes
        self.state = Mutex(State(machine: ClusterRoutingStateMachine(
            maximumClients: maximumClients, retryInterval: .milliseconds(retryIntervalMilliseconds)
        )))
        guard case .cluster(var endpoint) = redis.endpoint else {
            self.single = RedisCommandClient(
                redis: redis, logger: logger, maximumPending: maximumPending,
                retryIntervalMilliseconds: retryIntervalMilliseconds, lanes: lanes
            )
            self.endpoint = nil
            return
        }
        endpoint.slot = nil
        self.single = nil
        self.endpoint = endpoint
        if state.withLock({ $0.machine.start(now: .now) }) { startTopologyRead() }
    }

    /// Clients made so far (one when `redis` is not a cluster).
    package var clientCount: Int {
        single == nil ? state.withLock { $0.clients.count } : 1
    }

    /// `-MOVED` replies seen so far.
    package var redirectionCount: Int { state.withLock { $0.redirections } }

    /// Whether a cluster topology has been read (false when `redis` is not a cluster).
    package var hasTopology: Bool { state.withLock { $0.machine.topology != nil } }

    /// Sends `arguments` on `lane` to the master serving `key`'s slot (any master without a
    /// key); `completion` runs on a client's thread, or on the caller's if the command is refused.
    public func send(_ arguments: [[UInt8]], key: [UInt8]?, lane: Int, completion: @escaping Completion) {
        if let single {
            single.send(arguments, lane: lane, completion: completion)
            return
        }
        let command = Command(arguments: arguments, slot: key.map { ClusterSlot.slot(of: $0) }, lane: lane, completion: completion)
        dispatch(command, resends: 0)
    }

    /// Fails everything queued with `.shutdown`, starts no more topology reads, and stops every
    /// client's thread (after its batch in flight).
    public func shutdown() {
        if let single {
            single.shutdown()
            return
        }
        let clients = state.withLock { state in
            state.machine.stop()
            return Array(state.clients.values)
        }
        for client in clients { client.shutdown() }
    }

    /// Sends `command` to the client the machine picks (making it if it is new).
    private func dispatch(_ command: Command, resends: Int) {
        let (client, startRead) = state.withLock { state -> (RedisCommandClient?, Bool) in
            let action = state.machine.route(slot: command.slot, now: .now)
            guard case .client(let representative, _) = action.route else { return (nil, false) }
            if let existing = state.clients[representative] { return (existing, action.startTopologyRead) }
            let made = makeClient(representative)
            state.clients[representative] = made
            return (made, action.startTopologyRead)
        }
        if startRead { startTopologyRead() }
        guard let client else {
            command.completion(.failure(RedisError(.shutdown, "the Redis cluster router is shut down")))
            return
        }
        client.send(command.arguments, lane: command.lane) { [self] result in
            answer(command, with: result, resends: resends)
        }
    }

    /// Hands `result` to the caller, or after a `-MOVED` records it and sends the command again.
    private func answer(_ command: Command, with result: Result<RedisReply, RedisError>, resends: Int) {
        guard case .success(let reply) = result, let text = reply.errorText, reply.serverError?.serverCode == "MOVED" else {
            command.completion(result)
            return
        }
        let slot = RedisCommandClient.movedSlot(text)
        let address = RedisCommandClient.movedTarget(text)
        let startRead = state.withLock { state in
            state.redirections += 1
            guard let slot, let address else { return state.machine.redirectionUnreadable(now: .now) }
            return state.machine.moved(slot: slot, to: address, now: .now)
        }
        if startRead { startTopologyRead() }
        onMoved?()
        guard let slot, let address, resends < Self.maximumResends else {
            command.completion(result)
            return
        }
        logger.debug("a Redis Cluster slot moved; sending the command to its new master", metadata: ["slot": "\(slot)", "to": "\(address)"])
        dispatch(command, resends: resends + 1)
    }

    /// A client for the commands of `representative`'s master, routed to that slot.
    private func makeClient(_ representative: Int) -> RedisCommandClient {
        var logger = logger
        logger[metadataKey: "redis.slot"] = "\(representative)"
        return RedisCommandClient(
            redis: redis.routed(toSlot: representative), logger: logger, maximumPending: maximumPending,
            retryIntervalMilliseconds: retryIntervalMilliseconds, lanes: lanes
        )
    }

    /// Reads the topology through the seeds on a helper thread (the machine allows one at a
    /// time), then tells the machine, which may want another.
    private func startTopologyRead() {
        guard let endpoint else { return }
        let started = OwnedThread.spawn { [self] in
            var topology: ClusterTopology?
            var failure: RedisError?
            do throws(RedisError) {
                topology = try RedisConnection.fetchClusterTopology(redis, endpoint: endpoint, shouldStop: { [self] in
                    state.withLock { $0.machine.isStopped }
                })
            } catch {
                failure = error
            }
            finishTopologyRead(topology, failure: failure)
        }
        if started == nil {
            // (The machine then waits out its retry interval: it asks for no read at once.)
            finishTopologyRead(nil, failure: RedisError(.connectionFailed, "cannot start a thread to read the cluster topology"))
        }
    }

    private func finishTopologyRead(_ topology: ClusterTopology?, failure: RedisError?) {
        let (startRead, failedReads) = state.withLock { state in
            state.failedReads = topology == nil ? state.failedReads + 1 : 0
            return (state.machine.topologyRead(topology, now: .now), state.failedReads)
        }
        if let failure, failure.code != .shutdown {
            // The first failure in a row is worth a warning; the retries that follow are not.
            logger.log(
                level: failedReads == 1 ? .warning : .debug, "cannot read the Redis Cluster topology",
                metadata: ["redis": "\(redis)", "error": "\(failure)"]
            )
        }
        if startRead { startTopologyRead() }
    }
}
