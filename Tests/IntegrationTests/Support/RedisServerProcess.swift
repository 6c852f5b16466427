import Foundation
import SSERedis

/// A throwaway `redis-server` that a test starts on a free loopback port and a unix socket,
/// and stops by its pid. Missing `redis-server` fails the test: it never skips.
///
/// With `tls`, the TCP port speaks only TLS (`--port 0 --tls-port P`, client certificates
/// optional) and `configuration` (the test's own helper commands) uses the unix socket.
final class RedisServerProcess: @unchecked Sendable {
    // @unchecked: `process` is only replaced by `restart()`, which tests call from one task.
    let port: Int
    let socketPath: String
    let password: String?
    /// Whether data survives a kill: append-only file, fsync on every write.
    let persistent: Bool
    /// The certificates of a TLS server (its certificate is `serverCertificate`), or nil.
    let tls: TLSTestCertificates?
    private let directory: URL
    private var process: Process
    /// Extra `redis-server` arguments for the next (re)start.
    private var extraArguments: [String]

    /// `redis://127.0.0.1:PORT/DB` with the password when there is one.
    func url(database: Int = 0) -> String {
        "redis://\(password.map { ":\($0)@" } ?? "")127.0.0.1:\(port)/\(database)"
    }

    var configuration: RedisConfiguration {
        get throws {
            guard tls != nil else { return try RedisConfiguration(url: url()) }
            return RedisConfiguration(endpoint: .unixSocket(path: socketPath), password: password)
        }
    }

    /// `rediss://[:password@]HOST:PORT/DB?QUERY`, by default trusting the test CA.
    func tlsURL(host: String = "127.0.0.1", database: Int = 0, query: String? = nil) -> String {
        let query = query ?? "ssl_ca_certs=\(tls?.caCertificate ?? "")"
        return "rediss://\(password.map { ":\($0)@" } ?? "")\(host):\(port)/\(database)\(query.isEmpty ? "" : "?" + query)"
    }

    init(password: String? = nil, persistent: Bool = false, arguments: [String] = [], tls: TLSTestCertificates? = nil) async throws {
        self.port = try FreePort.next()
        self.password = password
        self.persistent = persistent
        self.tls = tls
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("sse-redis-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.socketPath = directory.appendingPathComponent("redis.sock").path
        self.extraArguments = arguments
        self.process = try Self.launch(
            port: port, socketPath: socketPath, directory: directory, password: password, persistent: persistent,
            extra: Self.tlsArguments(tls, port: port) + arguments
        )
        try await waitUntilReady()
    }

    private static func launch(
        port: Int, socketPath: String, directory: URL, password: String?, persistent: Bool, extra: [String]
    ) throws -> Process {
        let process = Process()
        process.executableURL = try Executables.find("redis-server")
        var arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--unixsocket", socketPath, "--unixsocketperm", "700",
            "--save", "", "--appendonly", persistent ? "yes" : "no", "--appendfsync", "always",
            "--dir", directory.path, "--daemonize", "no", "--loglevel", "warning",
        ]
        if let password { arguments += ["--requirepass", password] }
        process.arguments = arguments + extra
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Arguments that move the TCP port to TLS (later `--port 0` wins over the plain one).
    private static func tlsArguments(_ tls: TLSTestCertificates?, port: Int) -> [String] {
        guard let tls else { return [] }
        return [
            "--port", "0", "--tls-port", String(port), "--tls-cert-file", tls.serverCertificate,
            "--tls-key-file", tls.serverKey, "--tls-ca-cert-file", tls.caCertificate, "--tls-auth-clients", "optional",
        ]
    }

    private func waitUntilReady() async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if FileManager.default.fileExists(atPath: socketPath), (try? FreePort.isListening(port)) == true,
                tls == nil || Self.acceptsOnSocket(socketPath)
            {
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("redis-server on port \(port) did not start")
    }

    /// Whether the unix socket takes connections (its file exists a moment before it listens;
    /// with TLS the helper commands use it, and the TLS port may listen first).
    private static func acceptsOnSocket(_ path: String) -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                connect(descriptor, raw, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    /// Sends one command over a fresh connection (real hiredis, our command client).
    func command(_ arguments: String...) async throws -> RedisReply {
        try await command(arguments)
    }

    /// Sends one command given as an array over a fresh connection.
    func command(_ arguments: [String]) async throws -> RedisReply {
        let client = RedisCommandClient(redis: try configuration, logger: .init(label: "test.redis"))
        defer { client.shutdown() }
        return try await client.send(arguments.map { Array($0.utf8) })
    }

    /// `PUBSUB NUMSUB channel`: how many connections (nodes) subscribe to `channel`.
    func subscriberCount(_ channel: String) async throws -> Int {
        guard case .array(let items) = try await command("PUBSUB", "NUMSUB", channel), items.count == 2,
            let count = items[1].integer
        else { throw TestFailure("unexpected PUBSUB NUMSUB reply") }
        return Int(count)
    }

    /// Waits until `channel` has exactly `count` subscribers.
    func waitForSubscribers(_ channel: String, count: Int, timeout: Duration = .seconds(10)) async throws {
        try await eventually(timeout: timeout, "\(count) subscriber(s) on \(channel)") {
            try await self.subscriberCount(channel) == count
        }
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to be gone.
    func kill() {
        Self.end(process, signal: SIGKILL)
    }

    /// Signals `process` and waits (bounded) for it to be gone; SIGKILL if it lingers.
    /// Foundation's `waitUntilExit` can hang on Linux, so this polls `isRunning` instead.
    static func end(_ process: Process, signal: Int32) {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, signal)
        for attempt in 0..<500 {
            guard process.isRunning else { return }
            if attempt == 250 { Foundation.kill(process.processIdentifier, SIGKILL) }
            usleep(10_000)
        }
    }

    /// Starts the server again on the same port and socket, with `arguments` if given.
    func restart(arguments: [String]? = nil, waitUntilReady wait: Bool = true) async throws {
        kill()
        if let arguments { extraArguments = arguments }
        try? FileManager.default.removeItem(atPath: socketPath)
        process = try Self.launch(
            port: port, socketPath: socketPath, directory: directory, password: password, persistent: persistent,
            extra: Self.tlsArguments(tls, port: port) + extraArguments
        )
        if wait { try await waitUntilReady() }
    }

    /// The process's pid, for signals a test sends itself (SIGSTOP/SIGCONT).
    var pid: Int32 { process.processIdentifier }

    /// Throwaway data: no graceful shutdown needed, and SIGTERM costs seconds per test.
    func stop() {
        Self.end(process, signal: SIGKILL)
        try? FileManager.default.removeItem(at: directory)
    }

    deinit {
        stop()
    }
}
