import Foundation
import Synchronization

/// A failure of the test harness itself, with a message.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds or `timeout` passes (then throws).
func eventually(
    timeout: Duration = .seconds(10),
    _ what: @autoclosure () -> String,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return }
        if ContinuousClock.now >= deadline { throw TestFailure("timed out waiting for \(what())") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// Free loopback ports, found by binding port 0.
enum FreePort {
    static func next() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket() failed") }
        defer { close(descriptor) }
        return try bindAnyPort(descriptor)
    }

    /// Binds `descriptor` to a free loopback port and returns the port.
    static func bindAnyPort(_ descriptor: Int32) throws -> Int {
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(descriptor, raw, length) == 0 && getsockname(descriptor, raw, &length) == 0
            }
        }
        guard bound else { throw TestFailure("bind() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return address
    }

    static func isListening(_ port: Int) throws -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket() failed") }
        defer { close(descriptor) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                connect(descriptor, raw, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

/// A loopback socket that listens (and never accepts) while the value lives: a port in use.
final class ListeningSocket: Sendable {
    let port: Int
    private let descriptor: Int32

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket() failed") }
        do {
            port = try FreePort.bindAnyPort(descriptor)
            guard listen(descriptor, 1) == 0 else { throw TestFailure("listen() failed") }
        } catch {
            close(descriptor)
            throw error
        }
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }
}

/// Finds programs on PATH and in this package's build folder.
enum Executables {
    static func find(_ name: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw TestFailure("\(name) not found on PATH: install it (make test installs what the tests need)")
    }

    /// The repository's root folder.
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The `sse-broker` built beside this test bundle.
    static func broker() throws -> URL {
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for directory in [bundleDirectory, bundleDirectory.deletingLastPathComponent()] {
            let candidate = directory.appendingPathComponent("sse-broker")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        let debug = packageRoot.appendingPathComponent(".build/debug/sse-broker")
        if FileManager.default.isExecutableFile(atPath: debug.path) { return debug }
        throw TestFailure("sse-broker executable not built: run `swift build` (make test does) before the tests")
    }

    /// The Python with Flask-SSE installed: `SSE_TEST_PYTHON`, else the venv `make test` creates.
    static func interopPython() throws -> URL {
        if let configured = ProcessInfo.processInfo.environment["SSE_TEST_PYTHON"], !configured.isEmpty {
            return URL(fileURLWithPath: configured)
        }
        let venv = packageRoot.appendingPathComponent(".venv-interop/bin/python")
        if FileManager.default.isExecutableFile(atPath: venv.path) { return venv }
        throw TestFailure("no Python with flask-sse: run `make test` (it creates .venv-interop) or set SSE_TEST_PYTHON")
    }
}

/// A child process a test started; killed by its pid when the test ends.
final class ChildProcess: @unchecked Sendable {
    // @unchecked: Process is thread-safe for the calls made here (run, terminate, wait).
    let process = Process()
    private let output = Pipe()
    private let collected = CollectedOutput()

    init(_ executable: URL, _ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = executable
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        process.standardOutput = output
        process.standardError = output
        let collected = self.collected
        output.fileHandleForReading.readabilityHandler = { handle in
            collected.append(handle.availableData)
        }
        try process.run()
    }

    /// Everything the process wrote to stdout and stderr so far.
    var text: String { collected.text }

    /// Sends `signal` and waits up to `timeout` for the exit; returns the exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(15)) async throws -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                RedisServerProcess.end(process, signal: SIGKILL)
                throw TestFailure("process did not exit within \(timeout) of signal \(signal)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// Waits for the process to exit by itself, then for what it wrote last to be collected
    /// (the pipe's handler runs on its own thread: until its output stops growing, at most 2 s).
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        try await eventually(timeout: timeout, "process exit") { !self.process.isRunning }
        var seen = collected.count
        var quiet = 0
        for _ in 0..<40 where quiet < 2 {
            try await Task.sleep(for: .milliseconds(50))
            let now = collected.count
            quiet = now == seen ? quiet + 1 : 0
            seen = now
        }
        return process.terminationStatus
    }

    deinit {
        RedisServerProcess.end(process, signal: SIGKILL)
        output.fileHandleForReading.readabilityHandler = nil
    }
}

/// Output gathered from a pipe's handler thread.
final class CollectedOutput: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var data = Data()

    func append(_ chunk: Data) {
        lock.lock()
        data.append(chunk)
        lock.unlock()
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    /// Bytes gathered so far.
    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return data.count
    }
}

/// A value several tasks read and write.
final class SharedValue<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>

    init(_ value: Value) {
        storage = Mutex(value)
    }

    func get() -> Value { storage.withLock { $0 } }
    func set(_ value: Value) { storage.withLock { $0 = value } }
}
