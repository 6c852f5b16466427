import Foundation
import Logging
import SSERedis
import Synchronization
import Testing

/// A tiny "Redis" on loopback that answers each connection with what a test scripts: hostile
/// RESP, a trickle, silence. One thread per connection; `stop()` closes everything.
final class FakeRedisServer: @unchecked Sendable {
    // @unchecked: `listener` is immutable; `connections` is behind a Mutex.
    let port: Int
    private let listener: Int32
    private let connections = Mutex<[Int32]>([])
    private let stopped = Mutex(false)

    /// `script` runs per connection after its first request arrived; `send` returns false once
    /// the peer is gone.
    /// Answers the n-th request (over all connections) with `answers[n]`, repeating the last.
    convenience init(answers: [String]) throws {
        let served = Mutex(0)
        try self.init(script: { _ in }, answering: { _ in
            served.withLock { count in
                defer { count += 1 }
                return answers.isEmpty ? nil : answers[min(count, answers.count - 1)]
            }
        })
    }

    convenience init(script: @escaping @Sendable (_ send: (_ bytes: [UInt8]) -> Bool) -> Void) throws {
        try self.init(script: script, answering: nil)
    }

    private init(
        script: @escaping @Sendable (_ send: (_ bytes: [UInt8]) -> Bool) -> Void,
        answering: (@Sendable (Int) -> String?)?
    ) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 16) == 0 else {
            close(descriptor)
            throw TestFailure("bind/listen failed")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        listener = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop(script, answering) }
        thread.start()
    }

    var configuration: RedisConfiguration {
        RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port), connectTimeoutMilliseconds: 1000, commandTimeoutMilliseconds: 5000)
    }

    private func acceptLoop(
        _ script: @escaping @Sendable (_ send: (_ bytes: [UInt8]) -> Bool) -> Void,
        _ answering: (@Sendable (Int) -> String?)?
    ) {
        // Each descriptor is closed by the thread that uses it, once it is done with it, and removed
        // from `connections` under the lock first: a descriptor closed while another thread may
        // still use it can be reused by another test's socket in this process, which would then
        // receive this server's bytes.
        defer { close(listener) }
        while !stopped.withLock({ $0 }) {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            let admitted = connections.withLock { list in
                if stopped.withLock({ $0 }) { return false }
                list.append(client)
                return true
            }
            guard admitted else {
                close(client)
                return
            }
            let thread = Thread { [self] in
                defer {
                    connections.withLock { list in
                        list.removeAll { $0 == client }
                        close(client)
                    }
                }
                var buffer = [UInt8](repeating: 0, count: 65536)
                let write: (_ bytes: [UInt8]) -> Bool = { bytes in
                    var offset = 0
                    while offset < bytes.count {
                        let written = bytes[offset...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        guard written > 0 else { return false }
                        offset += written
                    }
                    return true
                }
                if let answering {
                    var request = 0
                    while read(client, &buffer, buffer.count) > 0, let answer = answering(request), write(Array(answer.utf8)) {
                        request += 1
                    }
                    return
                }
                guard read(client, &buffer, buffer.count) > 0 else { return }
                script(write)
            }
            thread.start()
        }
    }

    /// Wakes the accept loop and every connection's thread; each closes its own descriptor.
    func stop() {
        stopped.withLock { $0 = true }
        shutdown(listener, Int32(SHUT_RDWR))
        connections.withLock { list in
            for connection in list { shutdown(connection, Int32(SHUT_RDWR)) }
        }
    }
}

/// Sends `prefix`, then `element` repeated in chunks up to `total` bytes (or until the peer goes).
func flood(_ send: (_ bytes: [UInt8]) -> Bool, prefix: String, element: String, total: Int) {
    guard send(Array(prefix.utf8)) else { return }
    let chunk = Array(String(repeating: element, count: max(1, 65536 / element.utf8.count)).utf8)
    var sent = 0
    while sent < total, send(chunk) { sent += chunk.count }
}

@Suite("Redis clients against hostile replies: bounded memory, a clear error, no trap")
struct RedisClientHostileReplyTests {
    static let limit = 1 << 20

    /// One PING through a command client with a 1 MiB reply limit; returns the outcome and how long it took.
    /// Timed where the completion runs, so a loaded test machine's task scheduling does not count.
    func ping(_ server: FakeRedisServer, timeoutMilliseconds: Int = 5000) async -> (Result<RedisReply, RedisError>, Duration) {
        var configuration = server.configuration
        configuration.maximumReplyBytes = Self.limit
        configuration.commandTimeoutMilliseconds = timeoutMilliseconds
        let client = RedisCommandClient(redis: configuration, logger: Logger(label: "test.hostile"))
        defer { client.shutdown() }
        let start = ContinuousClock.now
        return await withCheckedContinuation { continuation in
            client.send([Array("PING".utf8)]) { continuation.resume(returning: ($0, start.duration(to: .now))) }
        }
    }

    @Test(
        "replies past the bound fail the command with a protocol violation, fast",
        arguments: [
            // An absurd multi-bulk count, then endless small elements (each a 48-byte node in hiredis).
            ("*2147483647\r\n", ":1\r\n"),
            // Nested arrays, each declaring 100,000 elements.
            ("*2147483647\r\n", "*100000\r\n"),
            // A bulk string declared at 1 GB, then its bytes.
            ("$1000000000\r\n", "x"),
            // A status line that never ends.
            ("+", "y"),
            // An error line that never ends.
            ("-ERR ", "z"),
            // A length line that never ends.
            ("$", "9"),
        ]
    )
    func bounded(prefix: String, element: String) async throws {
        let server = try FakeRedisServer { send in flood(send, prefix: prefix, element: element, total: 16 << 20) }
        defer { server.stop() }
        let (result, elapsed) = await ping(server)
        guard case .failure(let error) = result else {
            Issue.record("expected a failure, got \(result)")
            return
        }
        #expect(error.code == .protocolViolation, "\(error)")
        #expect(elapsed < .seconds(3), "failed at the bound, not at the 5 s deadline: \(elapsed)")
    }

    @Test(
        "malformed counts and lengths are protocol errors, not allocations",
        arguments: ["*-5\r\n", "$-7\r\n", "*4294967297\r\n", ":99999999999999999999\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "!weird\r\n"]
    )
    func malformed(reply: String) async throws {
        let server = try FakeRedisServer { send in _ = send(Array(reply.utf8)) }
        defer { server.stop() }
        let (result, elapsed) = await ping(server)
        guard case .failure(let error) = result else {
            Issue.record("expected a failure, got \(result)")
            return
        }
        #expect(error.code == .protocolViolation, "\(error)")
        #expect(elapsed < .seconds(3), "failed at once, not at the 5 s deadline: \(elapsed)")
    }

    @Test("a reply within the bound still arrives whole")
    func withinBound() async throws {
        let payload = String(repeating: "p", count: Self.limit / 2)
        let server = try FakeRedisServer { send in _ = send(Array("$\(payload.utf8.count)\r\n\(payload)\r\n".utf8)) }
        defer { server.stop() }
        let (result, _) = await ping(server)
        #expect((try? result.get()) == .bulkString(Array(payload.utf8)))
    }

    @Test("a reply that stops halfway fails with .timedOut after the command timeout of silence")
    func silentHalfway() async throws {
        let server = try FakeRedisServer { send in
            _ = send(Array("$100\r\nhalf".utf8))
            usleep(4_000_000)
        }
        defer { server.stop() }
        let (result, elapsed) = await ping(server, timeoutMilliseconds: 1000)
        guard case .failure(let error) = result else {
            Issue.record("expected a timeout, got \(result)")
            return
        }
        #expect(error.code == .timedOut, "\(error)")
        #expect(elapsed >= .milliseconds(950) && elapsed < .seconds(2.5), "the 1 s command timeout: \(elapsed)")
    }

    @Test("a slow reply that keeps arriving is read to its end, not cut off at the command timeout")
    func slowButAlive() async throws {
        let server = try FakeRedisServer { send in
            guard send(Array("$12\r\n".utf8)) else { return }
            for byte in "slow-but-ok!".utf8 {
                usleep(150_000)
                guard send([byte]) else { return }
            }
            _ = send(Array("\r\n".utf8))
        }
        defer { server.stop() }
        let (result, elapsed) = await ping(server, timeoutMilliseconds: 1000)
        #expect((try? result.get()) == .bulkString(Array("slow-but-ok!".utf8)), "\(result)")
        #expect(elapsed > .seconds(1.5))
    }

    @Test("the subscriber drops a connection that sends an absurd reply, and reconnects")
    func subscriber() async throws {
        let server = try FakeRedisServer { send in flood(send, prefix: "*2147483647\r\n", element: ":1\r\n", total: 16 << 20) }
        defer { server.stop() }
        var configuration = server.configuration
        configuration.maximumReplyBytes = Self.limit
        let subscriber = try RedisSubscriber(
            redis: configuration,
            configuration: .init(backoffBaseMilliseconds: 50, backoffCapMilliseconds: 100),
            logger: Logger(label: "test.hostile")
        )
        let delegate = RecordingSubscriberDelegate()
        subscriber.subscribe("c")
        subscriber.start(delegate: delegate)
        defer { subscriber.shutdown() }
        try await eventually(timeout: .seconds(5), "the hostile reply dropped the connection twice") {
            delegate.state.withLock { $0.connects } >= 2
        }
        let error = delegate.state.withLock { $0.disconnects.first }
        #expect(error?.code == .protocolViolation, "\(String(describing: error))")
    }
}
