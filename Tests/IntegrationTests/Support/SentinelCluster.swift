import Foundation
import SSERedis

/// One `redis-server <conf> --sentinel` a test starts on a free loopback port, with a writable
/// configuration file of its own (Sentinel rewrites it), and stops by its pid.
final class SentinelProcess: @unchecked Sendable {
    // @unchecked: `process` is set once in init; Process is safe for the calls made here.
    let port: Int
    let id: String
    private let process: Process

    /// Starts a sentinel with `lines` after the basic ones (`port`, `bind`, `dir`, `myid`).
    init(port: Int, id: String, directory: URL, lines: [String]) throws {
        self.port = port
        self.id = id
        let file = directory.appendingPathComponent("sentinel-\(port).conf")
        let text = (["port \(port)", "bind 127.0.0.1", "daemonize no", "dir \(directory.path)", "loglevel warning", "sentinel myid \(id)"] + lines)
            .joined(separator: "\n") + "\n"
        try text.write(to: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = try Executables.find("redis-server")
        process.arguments = [file.path, "--sentinel"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
    }

    var address: String { "127.0.0.1:\(port)" }

    /// Sends one command to the sentinel over a fresh connection.
    func command(_ arguments: String...) async throws -> RedisReply {
        try await Self.command(port: port, arguments)
    }

    static func command(port: Int, _ arguments: [String]) async throws -> RedisReply {
        let client = RedisCommandClient(
            redis: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port), connectTimeoutMilliseconds: 500, commandTimeoutMilliseconds: 2000),
            logger: .init(label: "test.sentinel")
        )
        defer { client.shutdown() }
        return try await client.send(arguments.map { Array($0.utf8) })
    }

    /// The port of the master the sentinel names for `name`, or nil.
    func masterPort(_ name: String = SentinelCluster.masterName) async -> Int? {
        guard case .array(let items)? = try? await command("SENTINEL", "get-master-addr-by-name", name), items.count == 2 else { return nil }
        return items[1].string.flatMap { Int($0) }
    }

    func waitUntilListening() async throws {
        try await eventually("sentinel on \(port) listening") { (try? FreePort.isListening(self.port)) == true }
    }

    func stop() {
        RedisServerProcess.end(process, signal: SIGKILL)
    }

    deinit {
        stop()
    }
}

/// A master, two replicas and three sentinels (quorum 2, `down-after-milliseconds` 1000,
/// `failover-timeout` 5000) on loopback, all stopped by pid when the cluster is.
///
/// The sentinels' files already name the replicas and the other sentinels (`known-replica`,
/// `known-sentinel`), so they need not discover them (about 3 s); `waitUntilSettled` still
/// checks that every sentinel sees both replicas and both other sentinels before a failover.
final class SentinelCluster: @unchecked Sendable {
    // @unchecked: set once in init; the processes are themselves safe to stop from any thread.
    static let masterName = "mymaster"

    /// The Redis servers by port: the first master, then the replicas.
    let servers: [RedisServerProcess]
    let sentinels: [SentinelProcess]
    private let directory: URL

    init(watched name: String = SentinelCluster.masterName) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sse-sentinel-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let master = try await RedisServerProcess()
        var servers = [master]
        var sentinels: [SentinelProcess] = []
        do {
            for _ in 0..<2 {
                servers.append(try await RedisServerProcess(arguments: ["--replicaof", "127.0.0.1", String(master.port)]))
            }
            let ports = try (0..<3).map { _ in try FreePort.next() }
            let ids = ports.map { _ in (0..<40).map { _ in String("0123456789abcdef".randomElement() ?? "0") }.joined() }
            for (index, port) in ports.enumerated() {
                var lines = [
                    "sentinel monitor \(name) 127.0.0.1 \(master.port) 2",
                    "sentinel down-after-milliseconds \(name) 1000",
                    "sentinel failover-timeout \(name) 5000",
                ]
                lines += servers.dropFirst().map { "sentinel known-replica \(name) 127.0.0.1 \($0.port)" }
                for (other, otherPort) in ports.enumerated() where other != index {
                    lines.append("sentinel known-sentinel \(name) 127.0.0.1 \(otherPort) \(ids[other])")
                }
                sentinels.append(try SentinelProcess(port: port, id: ids[index], directory: directory, lines: lines))
            }
            for sentinel in sentinels { try await sentinel.waitUntilListening() }
        } catch {
            for sentinel in sentinels { sentinel.stop() }
            for server in servers { server.stop() }
            throw error
        }
        self.servers = servers
        self.sentinels = sentinels
    }

    /// `redis+sentinel://` naming every sentinel.
    var url: String {
        "redis+sentinel://\(sentinels.map(\.address).joined(separator: ","))/\(Self.masterName)"
    }

    var configuration: RedisConfiguration {
        get throws { try RedisConfiguration(url: url) }
    }

    /// The server the first sentinel that answers names as master now.
    func currentMaster() async throws -> RedisServerProcess {
        var port: Int?
        for sentinel in sentinels where port == nil { port = await sentinel.masterPort() }
        guard let server = servers.first(where: { $0.port == port }) else { throw TestFailure("no known master (sentinel says \(String(describing: port)))") }
        return server
    }

    /// Waits until every sentinel sees two healthy replicas and the two other sentinels, and
    /// every replica's link to the master is up: a `SENTINEL FAILOVER` before that answers `-NOGOOD`.
    func waitUntilSettled(timeout: Duration = .seconds(15)) async throws {
        let master = try await currentMaster()
        try await eventually(timeout: timeout, "sentinels to know the replicas and each other") {
            for sentinel in self.sentinels {
                guard case .array(let replicas) = try await sentinel.command("SENTINEL", "replicas", Self.masterName), replicas.count == 2,
                    replicas.allSatisfy({ Self.field("flags", of: $0) == "slave" && Self.field("master-link-status", of: $0) == "ok" }),
                    case .array(let others) = try await sentinel.command("SENTINEL", "sentinels", Self.masterName), others.count == 2
                else { return false }
            }
            for server in self.servers where server.port != master.port {
                guard case .bulkString(let info) = try await server.command("INFO", "replication"),
                    String(decoding: info, as: UTF8.self).contains("master_link_status:up")
                else { return false }
            }
            return true
        }
    }

    /// A field of a `SENTINEL replicas` entry (a flat list of names and values).
    static func field(_ name: String, of entry: RedisReply) -> String? {
        guard case .array(let items) = entry else { return nil }
        var index = 0
        while index + 1 < items.count {
            if items[index].string == name { return items[index + 1].string }
            index += 2
        }
        return nil
    }

    func stop() {
        for sentinel in sentinels { sentinel.stop() }
        for server in servers { server.stop() }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit {
        stop()
    }
}

/// Runs `body` with a fresh `SentinelCluster`, stopped when `body` returns or throws.
func withSentinelCluster<Result>(_ body: (SentinelCluster) async throws -> Result) async throws -> Result {
    let cluster = try await SentinelCluster()
    defer { cluster.stop() }
    return try await body(cluster)
}
