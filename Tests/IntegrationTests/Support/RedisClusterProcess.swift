import Foundation
import SSERedis
import Synchronization

/// A throwaway Redis Cluster on loopback: `masters * (1 + replicasPerMaster)` `redis-server`
/// processes in cluster mode, joined by `redis-cli --cluster create`, each in a directory of its
/// own under one temporary directory, all stopped by pid. A missing `redis-server` or `redis-cli`
/// fails the test: it never skips.
///
/// Every node's cluster bus listens on its port + 10000 (`ClusterPort` picks both). `init`
/// returns only once every node reports `cluster_state:ok`, knows every other node, agrees on
/// who serves all 16384 slots, and every replica's link to its master is up (a `CLUSTER FAILOVER`
/// before the first sync would time out).
///
/// With `tls`, every node listens only on TLS (`--port 0 --tls-port P`, no client certificates
/// asked for), its cluster bus (P + 10000) and replication are TLS too, and the harness's own
/// commands, `redis-cli --cluster create` and `url` (`rediss+cluster://`) trust the test CA.
final class RedisClusterProcess: @unchecked Sendable {
    // @unchecked: every stored property is set once in init; `Process` is safe for the calls
    // made here (`isRunning`, `processIdentifier`, signals) from any thread.

    /// Hash slots in a Redis Cluster.
    static let slotCount = 16384

    /// A slot range and the port of the master that serves it, as one node's `CLUSTER SLOTS` says.
    struct SlotRange: Hashable, Sendable, CustomStringConvertible {
        let slots: ClosedRange<Int>
        let masterPort: Int

        var description: String { "\(slots.lowerBound)-\(slots.upperBound)@\(masterPort)" }
    }

    /// One line of `CLUSTER NODES`: a node as the node asked sees it.
    struct ClusterNode: Hashable, Sendable {
        let id: String
        let port: Int
        /// `myself`, `master`, `slave`, `fail?`, `fail`, `handshake`, `noaddr`, `nofailover`...
        let flags: Set<String>
        /// The id of the master this node replicates, or nil for a master.
        let masterID: String?
        /// The slots it serves (the `[slot->-id]` importing/migrating markers left out).
        let slots: [ClosedRange<Int>]

        var isMaster: Bool { flags.contains("master") }
        var isReplica: Bool { flags.contains("slave") }
        /// Failing (`fail`, or `fail?` in the eyes of the node asked) or not yet a full member.
        var isUnhealthy: Bool { !flags.isDisjoint(with: ["fail", "fail?", "handshake", "noaddr"]) }

        /// Parses `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`.
        init?(line: Substring) {
            let fields = line.split(separator: " ")
            guard fields.count >= 8 else { return nil }
            let address = fields[1].split(separator: ",").first?.split(separator: "@").first ?? ""
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else { return nil }
            id = String(fields[0])
            self.port = port
            flags = Set(fields[2].split(separator: ",").map(String.init))
            masterID = fields[3] == "-" ? nil : String(fields[3])
            slots = fields.dropFirst(8).compactMap { field -> ClosedRange<Int>? in
                guard !field.hasPrefix("[") else { return nil }
                let bounds = field.split(separator: "-").compactMap { Int($0) }
                guard let first = bounds.first, let last = bounds.last, first <= last else { return nil }
                return first...last
            }
        }
    }

    /// Every node's port, in start order: the masters `redis-cli` made first, then the replicas.
    let ports: [Int]
    let password: String?
    /// The masters as the cluster was formed (in start order): the seed list of `url`.
    let seedPorts: [Int]
    /// The certificates every node serves (its certificate is `serverCertificate`), or nil for plain TCP.
    let tls: TLSTestCertificates?
    private let processes: [Int: Process]
    private let directory: URL

    /// `redis+cluster://[:password@]127.0.0.1:P1,127.0.0.1:P2,...`: the masters as formed; with
    /// TLS `rediss+cluster://…?ssl_ca_certs=CA` (the CA's path percent-encoded).
    /// `url` with one more query parameter (`name=value`).
    func url(adding parameter: String) -> String {
        url + (url.contains("?") ? "&" : "?") + parameter
    }

    var url: String {
        let auth = password.map { ":\(Self.percentEncoded($0))@" } ?? ""
        let nodes = seedPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        guard let tls else { return "redis+cluster://\(auth)\(nodes)" }
        return "rediss+cluster://\(auth)\(nodes)?ssl_ca_certs=\(Self.percentEncoded(tls.caCertificate, keeping: "/"))"
    }

    /// How the harness's own commands reach the node on `port`: plain TCP, or TLS trusting the test
    /// CA (with the certificate's name checked: it names 127.0.0.1); the password when there is one.
    static func configuration(port: Int, password: String?, tls: TLSTestCertificates?) -> RedisConfiguration {
        RedisConfiguration(
            endpoint: .tcp(host: "127.0.0.1", port: port), password: password,
            connectTimeoutMilliseconds: 1000, commandTimeoutMilliseconds: 10_000,
            tls: tls.map { RedisTLSOptions(caCertificatesFile: $0.caCertificate) }
        )
    }

    /// Starts the nodes and forms the cluster (bounded: 30 s to form, each node 10 s to start).
    init(masters: Int = 3, replicasPerMaster: Int = 0, password: String? = nil, tls: TLSTestCertificates? = nil) async throws {
        guard masters >= 3 else { throw TestFailure("a Redis Cluster needs at least 3 masters, not \(masters)") }
        guard replicasPerMaster >= 0 else { throw TestFailure("replicasPerMaster must not be negative") }
        let server = try Executables.find("redis-server")
        let cli = try Executables.find("redis-cli")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sse-cluster-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var started: [(port: Int, process: Process)] = []
        do {
            for _ in 0..<(masters * (1 + replicasPerMaster)) {
                started.append(try await Self.startNode(server: server, directory: directory, password: password, tls: tls))
            }
            let ports = started.map(\.port)
            let said = try await Self.create(cli: cli, ports: ports, replicasPerMaster: replicasPerMaster, password: password, tls: tls)
            try await Self.waitUntilFormed(ports: ports, masters: masters, password: password, tls: tls, redisCLIOutput: said, directory: directory)
            let nodes = try await Self.clusterNodes(port: ports[0], password: password, tls: tls)
            let masterPorts = Set(nodes.filter(\.isMaster).map(\.port))
            self.seedPorts = ports.filter { masterPorts.contains($0) }
            self.ports = ports
        } catch {
            Self.end(started.map(\.process))
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        self.password = password
        self.tls = tls
        self.directory = directory
        self.processes = Dictionary(uniqueKeysWithValues: started.map { ($0.port, $0.process) })
    }

    // MARK: Starting and forming

    /// Starts one cluster-mode `redis-server` on a fresh port pair and waits until it answers
    /// `PING`; on another port pair if it exits first (a port taken since it was picked).
    private static func startNode(server: URL, directory: URL, password: String?, tls: TLSTestCertificates?) async throws -> (port: Int, process: Process) {
        var failures: [String] = []
        for _ in 0..<5 {
            let port = try ClusterPort.next()
            let own = directory.appendingPathComponent("node-\(port)")
            try FileManager.default.createDirectory(at: own, withIntermediateDirectories: true)
            let process = Process()
            process.executableURL = server
            var arguments = [
                "--cluster-enabled", "yes", "--cluster-config-file", directory.appendingPathComponent("nodes-\(port).conf").path,
                "--cluster-node-timeout", "2000", "--appendonly", "no", "--save", "", "--bind", "127.0.0.1",
                "--dir", own.path, "--daemonize", "no", "--loglevel", "notice",
                "--logfile", own.appendingPathComponent("redis.log").path,
                // A replica's first sync starts at once, not after the default 5 s wait for more replicas.
                "--repl-diskless-sync-delay", "0",
            ]
            if let tls {
                // TLS only: no plain port; the cluster bus and replication links are TLS as well.
                arguments += [
                    "--port", "0", "--tls-port", String(port), "--tls-cluster", "yes", "--tls-replication", "yes",
                    "--tls-cert-file", tls.serverCertificate, "--tls-key-file", tls.serverKey,
                    "--tls-ca-cert-file", tls.caCertificate, "--tls-auth-clients", "no",
                ]
            } else {
                arguments += ["--port", String(port)]
            }
            if let password { arguments += ["--requirepass", password, "--masterauth", password] }
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            do {
                try await waitUntilAnswers(port: port, process: process, password: password, tls: tls)
                return (port, process)
            } catch {
                RedisServerProcess.end(process, signal: SIGKILL)
                failures.append("port \(port): \(error)\(logTail(directory: directory, port: port))")
            }
        }
        throw TestFailure("no cluster-mode redis-server started: \(failures.joined(separator: "; "))")
    }

    private static func waitUntilAnswers(port: Int, process: Process, password: String?, tls: TLSTestCertificates?) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            guard process.isRunning else { throw TestFailure("redis-server exited with status \(process.terminationStatus)") }
            if (try? FreePort.isListening(port)) == true,
                (try? await command(port: port, password: password, tls: tls, [Array("PING".utf8)])) == .status("PONG")
            {
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("redis-server did not answer PING within 10 s")
    }

    /// Runs `redis-cli --cluster create` (bounded: 30 s) and returns what it said.
    private static func create(cli: URL, ports: [Int], replicasPerMaster: Int, password: String?, tls: TLSTestCertificates?) async throws -> String {
        var arguments = ["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" }
        arguments += ["--cluster-replicas", String(replicasPerMaster), "--cluster-yes"]
        if let password { arguments += ["-a", password, "--no-auth-warning"] }
        if let tls { arguments += ["--tls", "--cacert", tls.caCertificate] }
        let child = try ChildProcess(cli, arguments)
        let status: Int32
        do {
            status = try await child.waitForExit(timeout: .seconds(30))
        } catch {
            _ = try? await child.stop(signal: SIGKILL, timeout: .seconds(2))
            throw TestFailure("redis-cli --cluster create did not finish within 30 s; it said:\n\(plain(child.text))")
        }
        let said = plain(child.text)
        guard status == 0 else { throw TestFailure("redis-cli --cluster create exited with status \(status); it said:\n\(said)") }
        return said
    }

    /// Waits (bounded: 30 s) until the cluster is whole; the error names what was still missing.
    private static func waitUntilFormed(
        ports: [Int], masters: Int, password: String?, tls: TLSTestCertificates?, redisCLIOutput: String, directory: URL
    ) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        var missing = "nothing checked yet"
        while ContinuousClock.now < deadline {
            do {
                guard let reason = try await formationGap(ports: ports, masters: masters, password: password, tls: tls) else { return }
                missing = reason
            } catch {
                missing = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let logs = ports.map { logTail(directory: directory, port: $0) }.joined()
        throw TestFailure("the cluster on \(ports) did not form within 30 s (\(missing)); redis-cli said:\n\(redisCLIOutput)\(logs)")
    }

    /// What keeps the cluster from being whole, or nil when nothing does.
    private static func formationGap(ports: [Int], masters: Int, password: String?, tls: TLSTestCertificates?) async throws -> String? {
        var agreed: [SlotRange]?
        for port in ports {
            guard let info = try await command(port: port, password: password, tls: tls, ["CLUSTER", "INFO"].map { Array($0.utf8) }).string else {
                return "\(port): no CLUSTER INFO"
            }
            guard info.contains("cluster_state:ok") else { return "\(port): not cluster_state:ok" }
            let nodes = try await clusterNodes(port: port, password: password, tls: tls)
            guard nodes.count == ports.count, Set(nodes.map(\.port)) == Set(ports) else {
                return "\(port) knows \(nodes.map(\.port).sorted()), not all of \(ports.sorted())"
            }
            if let unhealthy = nodes.first(where: \.isUnhealthy) {
                return "\(port) sees \(unhealthy.port) as \(unhealthy.flags.sorted().joined(separator: ","))"
            }
            guard nodes.filter(\.isMaster).count == masters else { return "\(port) sees \(nodes.filter(\.isMaster).count) masters, not \(masters)" }
            let ranges = try await slotRanges(port: port, password: password, tls: tls)
            if let gap = coverageGap(ranges) { return "\(port): \(gap)" }
            if let agreed, agreed != ranges { return "\(ports[0]) says \(agreed) but \(port) says \(ranges)" }
            agreed = ranges
            guard let replication = try await command(port: port, password: password, tls: tls, ["INFO", "replication"].map { Array($0.utf8) }).string else {
                return "\(port): no INFO replication"
            }
            if replication.contains("role:slave"), !replication.contains("master_link_status:up") {
                return "\(port): replica whose link to its master is not up"
            }
        }
        return nil
    }

    /// Why `ranges` (sorted) do not cover every slot exactly once, or nil when they do.
    static func coverageGap(_ ranges: [SlotRange]) -> String? {
        var next = 0
        for range in ranges {
            guard range.slots.lowerBound == next else { return "slots from \(next) are not covered as one sequence (next range \(range))" }
            next = range.slots.upperBound + 1
        }
        return next == slotCount ? nil : "slots \(next)-\(slotCount - 1) are not covered"
    }

    // MARK: Commands

    /// Sends one command to the node on `port` over a fresh connection.
    func command(port: Int, _ arguments: String...) async throws -> RedisReply {
        try await command(port: port, arguments)
    }

    /// Sends one command given as an array to the node on `port` over a fresh connection.
    func command(port: Int, _ arguments: [String]) async throws -> RedisReply {
        try await command(port: port, bytes: arguments.map { Array($0.utf8) })
    }

    /// Sends one command of byte-string arguments to the node on `port` (password and TLS as
    /// this cluster's), over a fresh connection.
    func command(port: Int, bytes arguments: [[UInt8]]) async throws -> RedisReply {
        try await Self.command(port: port, password: password, tls: tls, arguments)
    }

    /// Sends one command of byte-string arguments (real hiredis, our command client; over TLS
    /// trusting the test CA with `tls`). A Redis error reply (`MOVED`, `ASK`, `CLUSTERDOWN`...) is
    /// returned as `.error`, not thrown.
    static func command(port: Int, password: String?, tls: TLSTestCertificates? = nil, _ arguments: [[UInt8]]) async throws -> RedisReply {
        let client = RedisCommandClient(redis: configuration(port: port, password: password, tls: tls), logger: .init(label: "test.cluster"))
        defer { client.shutdown() }
        return try await client.send(arguments)
    }

    /// Sends a command that must answer `+OK`; anything else throws, naming `what`.
    private func expectOK(port: Int, _ what: String, _ arguments: String...) async throws {
        let reply = try await command(port: port, arguments)
        guard reply == .status("OK") else { throw TestFailure("\(what) on \(port) answered \(reply)") }
    }

    // MARK: Topology

    /// `CLUSTER NODES` as the node on `port` sees the cluster.
    func clusterNodes(port: Int) async throws -> [ClusterNode] {
        try await Self.clusterNodes(port: port, password: password, tls: tls)
    }

    private static func clusterNodes(port: Int, password: String?, tls: TLSTestCertificates?) async throws -> [ClusterNode] {
        let reply = try await command(port: port, password: password, tls: tls, ["CLUSTER", "NODES"].map { Array($0.utf8) })
        guard let text = reply.string else { throw TestFailure("CLUSTER NODES on \(port) answered \(reply)") }
        return text.split(whereSeparator: \.isNewline).compactMap { ClusterNode(line: $0) }
    }

    /// `CLUSTER SLOTS` as the node on `port` sees the cluster, sorted by slot.
    func slotRanges(port: Int) async throws -> [SlotRange] {
        try await Self.slotRanges(port: port, password: password, tls: tls)
    }

    private static func slotRanges(port: Int, password: String?, tls: TLSTestCertificates?) async throws -> [SlotRange] {
        let reply = try await command(port: port, password: password, tls: tls, ["CLUSTER", "SLOTS"].map { Array($0.utf8) })
        guard let entries = reply.elements else { throw TestFailure("CLUSTER SLOTS on \(port) answered \(reply)") }
        return try entries.map { entry -> SlotRange in
            // [start, end, [ip, port, id, ...] of the master, [ip, port, id, ...] of each replica...]
            guard let fields = entry.elements, fields.count >= 3, let first = fields[0].int, let last = fields[1].int, first <= last,
                let master = fields[2].elements, master.count >= 2, let masterPort = master[1].int
            else { throw TestFailure("CLUSTER SLOTS on \(port): unexpected entry \(entry)") }
            return SlotRange(slots: first...last, masterPort: masterPort)
        }.sorted { $0.slots.lowerBound < $1.slots.lowerBound }
    }

    /// The ports of the nodes this harness has not killed (and that have not exited).
    var livePorts: [Int] { ports.filter { processes[$0]?.isRunning == true } }

    /// Runs `body` against the live nodes in turn and returns the first answer (a node that
    /// cannot be reached, or whose answer `body` rejects, is passed over).
    private func askAnyLiveNode<Value>(_ what: String, _ body: (Int) async throws -> Value) async throws -> Value {
        var failures: [String] = []
        for port in livePorts {
            do {
                return try await body(port)
            } catch {
                failures.append("\(port): \(error)")
            }
        }
        throw TestFailure("no live cluster node answered \(what) (\(failures.joined(separator: "; ")))")
    }

    /// The current masters (sorted) in the view of the first live node: those `CLUSTER NODES`
    /// flags `master` and not `fail`, left out any this harness killed.
    func masterPorts() async throws -> [Int] {
        let live = Set(livePorts)
        return try await askAnyLiveNode("CLUSTER NODES") { port in
            try await clusterNodes(port: port).filter { $0.isMaster && !$0.flags.contains("fail") && live.contains($0.port) }.map(\.port).sorted()
        }
    }

    /// The current replicas (sorted) in the view of the first live node, left out any this harness killed.
    func replicaPorts() async throws -> [Int] {
        let live = Set(livePorts)
        return try await askAnyLiveNode("CLUSTER NODES") { port in
            try await clusterNodes(port: port).filter { $0.isReplica && !$0.flags.contains("fail") && live.contains($0.port) }.map(\.port).sorted()
        }
    }

    /// The port of the master that the replica on `replicaPort` replicates (its own view).
    func masterPort(ofReplica replicaPort: Int) async throws -> Int {
        let nodes = try await clusterNodes(port: replicaPort)
        guard let myself = nodes.first(where: { $0.flags.contains("myself") }), let masterID = myself.masterID,
            let master = nodes.first(where: { $0.id == masterID })
        else { throw TestFailure("\(replicaPort) is not a replica of a known master") }
        return master.port
    }

    /// A replica of the master on `masterPort` (by each replica's own view).
    func replicaPort(of master: Int) async throws -> Int {
        for port in try await replicaPorts() where try await masterPort(ofReplica: port) == master { return port }
        throw TestFailure("the master \(master) has no replica")
    }

    /// The node id of the node on `port` (the `myself` line of its `CLUSTER NODES`).
    func nodeID(port: Int) async throws -> String {
        guard let myself = try await clusterNodes(port: port).first(where: { $0.flags.contains("myself") }) else {
            throw TestFailure("CLUSTER NODES on \(port) has no myself line")
        }
        return myself.id
    }

    /// `CLUSTER KEYSLOT key`: the slot of `key` (hash tags honoured).
    func slot(ofKey key: String) async throws -> Int {
        try await askAnyLiveNode("CLUSTER KEYSLOT") { port in
            let reply = try await command(port: port, "CLUSTER", "KEYSLOT", key)
            guard let slot = reply.int else { throw TestFailure("CLUSTER KEYSLOT answered \(reply)") }
            return slot
        }
    }

    /// The port of the master serving `slot`, by the first live node's `CLUSTER SLOTS`.
    func masterPort(forSlot slot: Int) async throws -> Int {
        try await askAnyLiveNode("CLUSTER SLOTS") { port in
            guard let range = try await slotRanges(port: port).first(where: { $0.slots.contains(slot) }) else {
                throw TestFailure("no master serves slot \(slot)")
            }
            return range.masterPort
        }
    }

    // MARK: Changing the cluster

    /// Moves `slot` and its keys to the master on `targetPort` the documented way (IMPORTING on
    /// the target, MIGRATING on the source, `MIGRATE` in batches of 100 keys, then `SETSLOT NODE`
    /// on the target, the source and every other master), then waits (bounded: 10 s) until every
    /// live node says the target serves it. Nothing to do when the target already serves it.
    func migrateSlot(_ slot: Int, to targetPort: Int) async throws {
        guard (0..<Self.slotCount).contains(slot) else { throw TestFailure("no slot \(slot)") }
        let sourcePort = try await masterPort(forSlot: slot)
        guard sourcePort != targetPort else { return }
        let sourceID = try await nodeID(port: sourcePort)
        let targetID = try await nodeID(port: targetPort)
        try await expectOK(port: targetPort, "CLUSTER SETSLOT \(slot) IMPORTING", "CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID)
        try await expectOK(port: sourcePort, "CLUSTER SETSLOT \(slot) MIGRATING", "CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetID)
        while true {
            let listed = try await command(port: sourcePort, "CLUSTER", "GETKEYSINSLOT", String(slot), "100")
            guard let keys = listed.elements else { throw TestFailure("CLUSTER GETKEYSINSLOT on \(sourcePort) answered \(listed)") }
            if keys.isEmpty { break }
            var arguments = ["MIGRATE", "127.0.0.1", String(targetPort), "", "0", "5000"]
            if let password { arguments += ["AUTH", password] }
            arguments.append("KEYS")
            var bytes = arguments.map { Array($0.utf8) }
            for key in keys {
                guard case .bulkString(let name) = key else { throw TestFailure("CLUSTER GETKEYSINSLOT listed \(key)") }
                bytes.append(name)
            }
            // (With TLS, `MIGRATE` reaches the target over TLS: `--tls-cluster yes`.)
            let moved = try await command(port: sourcePort, bytes: bytes)
            guard moved == .status("OK") || moved == .status("NOKEY") else {
                throw TestFailure("MIGRATE of slot \(slot) from \(sourcePort) to \(targetPort) answered \(moved)")
            }
        }
        let others = try await masterPorts().filter { $0 != sourcePort && $0 != targetPort }
        for port in [targetPort, sourcePort] + others {
            try await expectOK(port: port, "CLUSTER SETSLOT \(slot) NODE", "CLUSTER", "SETSLOT", String(slot), "NODE", targetID)
        }
        try await eventually("every live node to say \(targetPort) serves slot \(slot)") {
            for port in self.livePorts {
                guard try await self.slotRanges(port: port).first(where: { $0.slots.contains(slot) })?.masterPort == targetPort else { return false }
            }
            return true
        }
    }

    /// Sends `CLUSTER FAILOVER` to the replica on `replicaPort` and waits (bounded by `timeout`)
    /// until it answers `ROLE` master and every live node's `CLUSTER NODES` flags it master and
    /// its old master a replica of it (the old master answers `ROLE master` a moment longer and
    /// the other nodes learn by gossip, so `masterPorts()` right after could still name it).
    func failover(replicaPort: Int, timeout: Duration = .seconds(20)) async throws {
        let oldMasterPort = try await masterPort(ofReplica: replicaPort)
        let replicaID = try await nodeID(port: replicaPort)
        let reply = try await command(port: replicaPort, "CLUSTER", "FAILOVER")
        guard reply == .status("OK") else { throw TestFailure("CLUSTER FAILOVER on \(replicaPort) answered \(reply)") }
        try await eventually(timeout: timeout, "\(replicaPort) to answer ROLE master after CLUSTER FAILOVER") {
            try await self.command(port: replicaPort, "ROLE").elements?.first?.string == "master"
        }
        try await eventually(timeout: timeout, "every live node to see \(replicaPort) as master and \(oldMasterPort) as its replica") {
            for port in self.livePorts {
                let nodes = try await self.clusterNodes(port: port)
                guard nodes.first(where: { $0.port == replicaPort })?.isMaster == true else { return false }
                guard self.processes[oldMasterPort]?.isRunning == true else { continue }
                guard let old = nodes.first(where: { $0.port == oldMasterPort }), old.isReplica, old.masterID == replicaID else { return false }
            }
            return true
        }
    }

    /// The pid of the node on `port`, for signals a test sends itself (SIGSTOP/SIGCONT), or nil.
    func pid(port: Int) -> Int32? {
        processes[port]?.processIdentifier
    }

    /// Kills the node on `port` (SIGKILL, like a crash) and waits for it to be gone.
    func kill(port: Int) throws {
        guard let process = processes[port] else { throw TestFailure("no node of this cluster on port \(port)") }
        RedisServerProcess.end(process, signal: SIGKILL)
    }

    /// Stops every node it started: SIGTERM to all at once, SIGKILL to any still running after
    /// 1 s (all by pid); then removes the temporary directory. Safe to call more than once.
    func stop() {
        Self.end(Array(processes.values))
        try? FileManager.default.removeItem(at: directory)
    }

    private static func end(_ processes: [Process]) {
        let running = processes.filter(\.isRunning)
        for process in running { Foundation.kill(process.processIdentifier, SIGTERM) }
        for _ in 0..<100 where running.contains(where: \.isRunning) { usleep(10_000) }
        for process in running { RedisServerProcess.end(process, signal: SIGKILL) }
    }

    deinit {
        stop()
    }

    // MARK: Text

    /// The last lines of a node's log, for an error message (empty when there is none).
    private static func logTail(directory: URL, port: Int) -> String {
        let log = directory.appendingPathComponent("node-\(port)/redis.log")
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return "" }
        let lines = text.split(whereSeparator: \.isNewline).suffix(6)
        return "\n-- redis-server \(port) log:\n" + lines.joined(separator: "\n")
    }

    /// `text` without terminal colour codes (redis-cli colours its output even into a pipe).
    private static func plain(_ text: String) -> String {
        text.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression)
    }

    /// `text` percent-encoded for a URL's user-info part (or, `keeping: "/"`, a query value that is a path).
    private static func percentEncoded(_ text: String, keeping extra: String = "") -> String {
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~" + extra)
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// Ports for cluster nodes: a node also listens on its port + 10000 (the cluster bus), so both
/// must be free, and the port must be below 55536.
///
/// Picked at random below the kernel's ephemeral range (both the port and its bus port), so
/// neither collides with `FreePort.next()`'s ports or with outgoing connections' local ports; a
/// pair is handed out once per test process, and checked bindable on loopback. Falls back to
/// `FreePort.next()` (retrying until one fits) when the ephemeral range leaves no room below it.
enum ClusterPort {
    /// The cluster bus listens on the node's port plus this.
    static let busOffset = 10000

    private static let handedOut = Mutex<Set<Int>>([])

    static func next() throws -> Int {
        let candidates = belowEphemeral
        for _ in 0..<500 {
            let port = try candidates.map { Int.random(in: $0) } ?? FreePort.next()
            guard port + busOffset <= 65535, bindable(port), bindable(port + busOffset) else { continue }
            let claimed = handedOut.withLock { taken in
                guard !taken.contains(port), !taken.contains(port + busOffset) else { return false }
                taken.formUnion([port, port + busOffset])
                return true
            }
            if claimed { return port }
        }
        throw TestFailure("no free port P with P + \(busOffset) also free")
    }

    /// Ports P for which P and P + 10000 both lie below the ephemeral range (Linux: read from
    /// /proc; elsewhere 49152, the IANA start), or nil if that leaves fewer than 1000.
    private static var belowEphemeral: ClosedRange<Int>? {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let low = text.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 49152
        let upper = min(low - busOffset, 55536) - 1
        return upper - 10000 >= 1000 ? 10000...upper : nil
    }

    /// Whether `port` can be bound on 127.0.0.1 now (no `SO_REUSEADDR`: a port in TIME_WAIT is passed over).
    private static func bindable(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(descriptor, raw, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

/// Runs `body` with a fresh `RedisClusterProcess` (TLS-only with `tls`), stopped when `body` returns or throws.
func withRedisCluster<Result>(
    masters: Int = 3,
    replicasPerMaster: Int = 0,
    password: String? = nil,
    tls: TLSTestCertificates? = nil,
    _ body: (RedisClusterProcess) async throws -> Result
) async throws -> Result {
    let cluster = try await RedisClusterProcess(masters: masters, replicasPerMaster: replicasPerMaster, password: password, tls: tls)
    defer { cluster.stop() }
    return try await body(cluster)
}
