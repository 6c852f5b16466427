import Foundation

/// The real `sse-broker` executable as a child process, for what only a separate process shows:
/// its file descriptors and memory (read from /proc), signals, exit status.
final class BrokerProcess: Sendable {
    let port: Int
    let child: ChildProcess

    init(redisURL: String, arguments: [String] = [], environment: [String: String] = [:]) async throws {
        port = try FreePort.next()
        child = try ChildProcess(
            try Executables.broker(),
            ["--port", String(port), "--redis-url", redisURL, "--log-level", "warning"] + arguments,
            environment: environment
        )
        try await eventually("sse-broker to listen on \(port)") {
            if !self.child.process.isRunning { throw TestFailure("sse-broker exited: \(self.child.text)") }
            return try FreePort.isListening(port)
        }
    }

    var pid: Int32 { child.process.processIdentifier }

    /// Open file descriptors of the broker process.
    func openFileCount() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
    }

    /// Resident memory of the broker process, in bytes.
    func residentBytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { throw TestFailure("no VmRSS for pid \(pid)") }
        return kilobytes * 1024
    }

    /// Sends `signal` and returns the exit status.
    func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(15)) async throws -> Int32 {
        try await child.stop(signal: signal, timeout: timeout)
    }
}
