import Foundation
import Logging
import SSERedis
import Synchronization
import Testing

/// `ClusterCommandRouter` against a real Redis Cluster (and a plain Redis): commands reach the
/// master of their key's slot over one client per master, through migrations and failovers.
@Suite("Cluster command router", .serialized, .timeLimit(.minutes(3)))
struct ClusterCommandRouterTests {
    static let logger = Logger(label: "test.cluster-router")

    /// A flag one task sets and another polls.
    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .releasing) }
        var isSet: Bool { value.load(ordering: .acquiring) }
    }

    static func bytes(_ arguments: [String]) -> [[UInt8]] { arguments.map { Array($0.utf8) } }

    /// Sends `arguments` (on `key`'s slot), retrying after 10 ms on a transient error or error
    /// reply (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`…, as a caller would) until `timeout`;
    /// returns the reply and the transient codes seen on the way, in order.
    /// One command's outcome through `router`, as a value (not thrown).
    static func result(_ router: ClusterCommandRouter, _ arguments: [String], key: String) async -> Result<RedisReply, RedisError> {
        await withCheckedContinuation { continuation in
            router.send(bytes(arguments), key: Array(key.utf8), lane: 0) { continuation.resume(returning: $0) }
        }
    }

    /// The transient code of `result`: its error reply's code (`MOVED`, `ASK`, `TRYAGAIN`,
    /// `CLUSTERDOWN`…) or its error's, when a caller would retry it; nil otherwise.
    static func transientCode(_ result: Result<RedisReply, RedisError>) -> String? {
        switch result {
        case .success(let reply):
            guard let error = reply.serverError, error.isTransient else { return nil }
            return error.serverCode ?? "?"
        case .failure(let error):
            return error.isTransient ? "\(error.code)" : nil
        }
    }

    /// Sends `arguments` (on `key`'s slot), retrying after 10 ms on a transient error or error
    /// reply, as a caller would, until `timeout`; returns the reply and the transient codes seen
    /// on the way, in order.
    static func sendRetrying(
        _ router: ClusterCommandRouter, _ arguments: [String], key: String, timeout: Duration = .seconds(20)
    ) async throws -> (reply: RedisReply, transient: [String]) {
        let deadline = ContinuousClock.now + timeout
        var transient: [String] = []
        while true {
            let outcome = await result(router, arguments, key: key)
            guard let code = transientCode(outcome) else { return (try outcome.get(), transient) }
            transient.append(code)
            guard ContinuousClock.now < deadline else {
                throw TestFailure("\(arguments) still failed after \(timeout): \(transient.suffix(5))")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    static func router(_ cluster: RedisClusterProcess, onMoved: (@Sendable () -> Void)? = nil) async throws -> ClusterCommandRouter {
        let router = ClusterCommandRouter(redis: try RedisConfiguration(url: cluster.url), logger: logger, onMoved: onMoved)
        try await eventually("the router to read the cluster topology") { router.hasTopology }
        return router
    }

    /// `count` keys `prefix0…` on each master, by master port (slots from one node's `CLUSTER SLOTS`).
    static func keysByMaster(_ cluster: RedisClusterProcess, prefix: String, count: Int) async throws -> [Int: [String]] {
        let ranges = try await cluster.slotRanges(port: cluster.livePorts[0])
        var byMaster: [Int: [String]] = [:]
        for port in Set(ranges.map(\.masterPort)) { byMaster[port] = [] }
        var index = 0
        while byMaster.values.contains(where: { $0.count < count }), index < 10_000 {
            let key = "\(prefix)\(index)"
            let slot = ClusterSlot.slot(of: key)
            if let port = ranges.first(where: { $0.slots.contains(slot) })?.masterPort, let keys = byMaster[port], keys.count < count {
                byMaster[port] = keys + [key]
            }
            index += 1
        }
        return byMaster
    }

    /// SETs `key` to `key:N` for N = 0, 1, … (each retried as a caller would) until `stop` is set,
    /// then 10 more; returns how many were sent and the transient codes seen.
    static func setUntil(_ stop: Flag, _ router: ClusterCommandRouter, keys: [String]) async throws -> (count: Int, transient: [String]) {
        var count = 0
        var transient: [String] = []
        var after = 0
        while after < 10 {
            if stop.isSet { after += 1 }
            let key = keys[count % keys.count]
            let (reply, seen) = try await sendRetrying(router, ["SET", key, "\(key):\(count)"], key: key)
            guard reply == .status("OK") else { throw TestFailure("SET \(key) answered \(reply)") }
            transient += seen
            count += 1
            try await Task.sleep(for: .milliseconds(2))
        }
        return (count, transient)
    }

    // MARK: Routing

    @Test("keys on all three masters through one router: each lands on its slot's master at once (no -MOVED), over three clients; concurrent sends too")
    func routesByMaster() async throws {
        try await withRedisCluster(masters: 3) { cluster in try await Self.routesByMaster(cluster) }
    }

    static func routesByMaster(_ cluster: RedisClusterProcess) async throws {
        let router = try await router(cluster)
        defer { router.shutdown() }
        let byMaster = try await keysByMaster(cluster, prefix: "routed", count: 20)
        #expect(byMaster.count == 3)
        for keys in byMaster.values {
            for key in keys {
                let reply = try await router.send(bytes(["SET", key, "v-\(key)"]), key: Array(key.utf8))
                #expect(reply == .status("OK"), "SET \(key)")
            }
        }
        // Concurrently: 300 GETs over all keys from many tasks, answered right.
        let all = byMaster.values.flatMap { $0 }
        let wrong = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<300 {
                let key = all[index % all.count]
                group.addTask {
                    let reply = try await router.send(bytes(["GET", key]), key: Array(key.utf8))
                    return reply == .bulkString(Array("v-\(key)".utf8)) ? 0 : 1
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(wrong == 0)
        for (port, keys) in byMaster {
            for key in keys {
                let direct = try await cluster.command(port: port, "GET", key)
                #expect(direct == .bulkString(Array("v-\(key)".utf8)), "\(key) on its master \(port)")
            }
            let total = try await cluster.command(port: port, "DBSIZE")
            #expect(total.int == keys.count, "only its own keys on \(port)")
        }
        let clients = router.clientCount
        let redirections = router.redirectionCount
        #expect(clients == 3)
        #expect(redirections == 0, "every command went straight to its master")
    }

    @Test("a client routed to one slot passes another slot's -MOVED to its caller and stays on its master")
    func routedClientIgnoresOtherSlotsMoved() async throws {
        try await withRedisCluster(masters: 3) { cluster in try await Self.routedClientIgnoresOtherSlotsMoved(cluster) }
    }

    static func routedClientIgnoresOtherSlotsMoved(_ cluster: RedisClusterProcess) async throws {
        let byMaster = try await keysByMaster(cluster, prefix: "own", count: 1)
        let ports = byMaster.keys.sorted()
        guard ports.count == 3, let own = byMaster[ports[0]]?.first, let other = byMaster[ports[1]]?.first else {
            throw TestFailure("no keys on three masters")
        }
        let configuration = try RedisConfiguration(url: cluster.url).routed(toSlot: ClusterSlot.slot(of: own))
        let client = RedisCommandClient(redis: configuration, logger: logger)
        defer { client.shutdown() }
        let first = try await client.send("SET", own, "1")
        let elsewhere = try await client.send("SET", other, "1")
        let again = try await client.send("SET", own, "2")
        #expect(first == .status("OK"))
        #expect(elsewhere.serverError?.serverCode == "MOVED")
        #expect(again == .status("OK"), "still on the master of its own slot")
    }

    // MARK: Migration and failover

    @Test("a slot migrated to another master while commands on it flow: every command succeeds (no -MOVED reaches the caller), later ones reach the new master")
    func followsMigration() async throws {
        try await withRedisCluster(masters: 3) { cluster in try await Self.followsMigration(cluster) }
    }

    static func followsMigration(_ cluster: RedisClusterProcess) async throws {
        let router = try await router(cluster)
        defer { router.shutdown() }
        let byMaster = try await keysByMaster(cluster, prefix: "mig", count: 2)
        let ports = byMaster.keys.sorted()
        guard ports.count == 3, let sourceKeys = byMaster[ports[0]], let targetKey = byMaster[ports[1]]?.first else {
            throw TestFailure("no keys on three masters")
        }
        // The source's client is routed to another slot than the moving one (so only the router
        // can redirect the moving slot's commands); the target has a client already.
        let (warm, moving) = (sourceKeys[0], sourceKeys[1])
        let slot = ClusterSlot.slot(of: moving)
        #expect(ClusterSlot.slot(of: warm) != slot)
        for key in [warm, targetKey] {
            let reply = try await router.send(bytes(["SET", key, "warm"]), key: Array(key.utf8))
            #expect(reply == .status("OK"))
        }
        let stop = Flag()
        async let flowing = setUntil(stop, router, keys: [moving, warm])
        try await Task.sleep(for: .milliseconds(100))
        try await cluster.migrateSlot(slot, to: ports[1])
        stop.set()
        let (count, transient) = try await flowing
        #expect(count > 20)
        #expect(!transient.contains("MOVED"), "the router resends after -MOVED: \(transient)")
        let redirections = router.redirectionCount
        #expect(redirections >= 1, "the old master answered -MOVED at least once")
        let after = try await router.send(bytes(["SET", moving, "after"]), key: Array(moving.utf8))
        #expect(after == .status("OK"))
        let onTarget = try await cluster.command(port: ports[1], "GET", moving)
        #expect(onTarget == .bulkString(Array("after".utf8)))
        let clients = router.clientCount
        #expect(clients <= 3)
    }

    @Test("a failover of one master (CLUSTER FAILOVER on its replica) while commands flow: every command succeeds (no -MOVED reaches the caller), later ones reach the new master, and whoever follows the topology is told of each -MOVED")
    func followsFailover() async throws {
        try await withRedisCluster(masters: 3, replicasPerMaster: 1) { cluster in try await Self.followsFailover(cluster) }
    }

    static func followsFailover(_ cluster: RedisClusterProcess) async throws {
        let told = SharedValue(0)
        let router = try await router(cluster) { told.set(told.get() + 1) }
        defer { router.shutdown() }
        let byMaster = try await keysByMaster(cluster, prefix: "fo", count: 2)
        let master = try await cluster.masterPorts()[0]
        guard let keys = byMaster[master], keys.count == 2 else { throw TestFailure("no keys on \(master)") }
        let replica = try await cluster.replicaPort(of: master)
        // keys[0]'s slot is the client's own (it follows it by itself); keys[1]'s is only the router's to follow.
        let first = try await router.send(bytes(["SET", keys[0], "warm"]), key: Array(keys[0].utf8))
        #expect(first == .status("OK"))
        let stop = Flag()
        async let flowing = setUntil(stop, router, keys: [keys[1], keys[0]])
        try await Task.sleep(for: .milliseconds(100))
        try await cluster.failover(replicaPort: replica)
        stop.set()
        let (count, transient) = try await flowing
        #expect(count > 20)
        #expect(!transient.contains("MOVED"), "the router resends after -MOVED: \(transient)")
        let redirections = router.redirectionCount
        #expect(redirections >= 1, "the old master answered -MOVED at least once")
        #expect(told.get() >= 1 && told.get() <= redirections, "onMoved: \(told.get()) of \(redirections)")
        for key in keys {
            let (reply, _) = try await sendRetrying(router, ["SET", key, "after"], key: key)
            #expect(reply == .status("OK"))
            let onNewMaster = try await cluster.command(port: replica, "GET", key)
            #expect(onNewMaster == .bulkString(Array("after".utf8)), "\(key) on the new master \(replica)")
        }
        let clients = router.clientCount
        #expect(clients <= 4)
    }

    // MARK: Plain Redis

    @Test("a plain Redis through the router: one client, every key and a keyless command answered")
    func plainRedis() async throws {
        try await withRedis { redis in try await Self.plainRedis(redis) }
    }

    static func plainRedis(_ redis: RedisServerProcess) async throws {
        let router = ClusterCommandRouter(redis: try redis.configuration, logger: logger)
        defer { router.shutdown() }
        for index in 0..<50 {
            let key = "plain\(index)"
            let set = try await router.send(bytes(["SET", key, "v\(index)"]), key: Array(key.utf8))
            #expect(set == .status("OK"))
        }
        let count = try await router.send(bytes(["DBSIZE"]), key: nil)
        #expect(count.int == 50)
        let got = try await router.send(bytes(["GET", "plain7"]), key: Array("plain7".utf8))
        #expect(got == .bulkString(Array("v7".utf8)))
        let clients = router.clientCount
        let topology = router.hasTopology
        #expect(clients == 1)
        #expect(!topology)
        router.shutdown()
        await #expect(throws: RedisError.self) { try await router.send(bytes(["PING"]), key: nil) }
    }
}
