import Foundation
import Testing

/// `--request-timeout`, `--idle-timeout` and TCP keepalive, with short timeouts so the tests are fast.
@Suite("Request and idle timeouts", .timeLimit(.minutes(2)))
struct TimeoutTests {
    static func node(_ redis: RedisServerProcess, request: Double = 0.5, idle: Double = 0.5, maxConnections: Int? = nil) async throws -> BrokerNode {
        try await BrokerNode(redis: try redis.configuration) {
            $0.requestTimeoutSeconds = request
            $0.idleTimeoutSeconds = idle
            if let maxConnections { $0.maxConnections = maxConnections }
        }
    }

    @Test("a connection that sends nothing is closed after --request-timeout, without an answer")
    func silentConnection() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.node(redis)
        let started = ContinuousClock.now
        let silent = try await TestConnection.connect(port: node.port)
        try await silent.waitForClose(timeout: .seconds(3))
        #expect(started.duration(to: .now) >= .milliseconds(400))
        #expect(silent.received.isEmpty)
        await node.shutdown()
    }

    @Test("a head trickled a byte at a time (slowloris) gets 408 at --request-timeout, not reset by each byte")
    func slowloris() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.node(redis, request: 2, idle: 5)
        let started = ContinuousClock.now
        let slow = try await TestConnection.connect(port: node.port)
        let head = Array("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: \(String(repeating: "a", count: 100))".utf8)
        for byte in head {
            if slow.isClosed { break }
            try? await slow.send([byte])
            try await Task.sleep(for: .milliseconds(50))
        }
        try await slow.waitForClose(timeout: .seconds(5))
        let elapsed = started.duration(to: .now)
        #expect(elapsed < .seconds(4), "cut off after \(elapsed)")
        let answer = try #require(try HTTPResponse.parse(slow.received))
        #expect(answer.status == 408)
        #expect(answer.header("connection") == "close")
        #expect(answer.bodyText.contains("request not received within"))
        await node.shutdown()
    }

    @Test("half a publish body gets 408 at --request-timeout")
    func halfABody() async throws {
        let redis = try await RedisServerProcess()
        // The first request's time counts from accept: 4 s, so a loaded machine that is slow to
        // send the half request still sends it in time (a connection that sent nothing is closed
        // quietly, without a 408).
        let node = try await Self.node(redis, request: 4, idle: 8)
        let connection = try await TestConnection.connect(port: node.port)
        try await connection.send("POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"data\": ")
        try await connection.waitForClose(timeout: .seconds(10))
        #expect(try HTTPResponse.parse(connection.received)?.status == 408)
        await node.shutdown()
    }

    @Test("an idle keep-alive connection is closed after --idle-timeout; a busy one is not")
    func idleKeepAlive() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.node(redis, request: 5, idle: 2)
        let connection = try await TestConnection.connect(port: node.port)
        // Requests 0.2 s apart keep it open well past the idle timeout.
        var idleSince = ContinuousClock.now
        for index in 1...4 {
            try await connection.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            try await connection.waitFor("response \(index)") { String(decoding: $0, as: UTF8.self).components(separatedBy: "HTTP/1.1 200").count == index + 1 }
            // The node's idle timer starts when it has written the answer: no later than now.
            idleSince = ContinuousClock.now
            if index < 4 { try await Task.sleep(for: .milliseconds(200)) }
            #expect(!connection.isClosed)
        }
        try await connection.waitForClose(timeout: .seconds(10))
        #expect(idleSince.duration(to: .now) >= .seconds(1.5), "closed before --idle-timeout (2 s)")
        await node.shutdown()
    }

    @Test("streams never time out: a quiet stream outlives both timeouts and still gets events")
    func streamsDoNotTimeOut() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.node(redis, request: 2, idle: 0.5)
        let client = try await node.stream("quiet")
        try await redis.waitForSubscribers("quiet", count: 1)
        try await Task.sleep(for: .milliseconds(2500))
        #expect(!client.connection.isClosed)
        _ = try await redis.command("PUBLISH", "quiet", "still here")
        #expect(try await client.waitForEvents(1) == ["data:still here\n\n"])
        await client.close()
        await node.shutdown()
    }

    @Test("idle sockets cannot hold --max-connections: they are closed, and a stream gets in")
    func idleSocketsFreeTheirSlots() async throws {
        let redis = try await RedisServerProcess()
        // Timeouts long enough that a loaded machine still sees all three admitted before they end.
        let node = try await Self.node(redis, request: 6, idle: 6, maxConnections: 3)
        var idle: [TestConnection] = []
        for _ in 0..<3 { idle.append(try await TestConnection.connect(port: node.port)) }
        try await eventually("three connections admitted") { node.server.connectionCount == 3 }
        let refused = try await TestConnection.connect(port: node.port)
        try await refused.waitForClose()
        #expect(try HTTPResponse.parse(refused.received)?.status == 503)
        for connection in idle { try await connection.waitForClose(timeout: .seconds(20)) }
        let admitted = try await node.stream("room")
        #expect(try await admitted.head().status == 200)
        await admitted.close()
        await node.shutdown()
    }

    @Test("a client that pipelines requests and never reads its answers is no longer read, and is closed after --idle-timeout")
    func pipelinerThatDoesNotRead() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.node(redis, request: 5, idle: 1)
        let connection = try await TestConnection.connect(port: node.port, autoRead: false, receiveBuffer: 4096)
        let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
        let flood = String(repeating: request, count: 100_000)  // 4 MB of requests, about 100x that in answers
        let sender = Task { try? await connection.send(flood) }
        try await eventually("the connection to be admitted") { node.server.connectionCount == 1 }
        try await eventually(timeout: .seconds(10), "the node to close the stalled connection") { node.server.connectionCount == 0 }
        sender.cancel()
        await connection.close()
        await node.shutdown()
    }

    @Test("accepted sockets have TCP keepalive on (a stream's dead peer is found even with --heartbeat 0)")
    func tcpKeepalive() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.node(redis, request: 5, idle: 5)
        let client = try await node.stream("ka")
        // /proc/net/tcp: the server's end of this stream (local port = the node's, remote port =
        // the client's, established) has its keepalive timer running (timer_active 2). Only this
        // socket: another test's connection may sit in the node's accept queue for a moment.
        let clientPort = try #require(client.connection.localPort)
        let timers = try Self.establishedTimers(localPort: node.port, remotePort: clientPort)
        #expect(timers == [2], "timer_active of the stream's server socket: \(timers)")
        await client.close()
        await node.shutdown()
    }

    /// The `timer_active` field of every established TCP socket whose local port is `localPort`.
    static func establishedTimers(localPort: Int, remotePort: Int) throws -> [Int] {
        var timers: [Int] = []
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            // /proc files report size 0: read them to their end.
            guard let handle = FileHandle(forReadingAtPath: file) else { continue }
            let table = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
            try? handle.close()
            for line in table.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count > 5, fields[3] == "01",
                    let port = fields[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }), port == localPort,
                    let peer = fields[2].split(separator: ":").last.flatMap({ Int($0, radix: 16) }), peer == remotePort,
                    let timer = fields[5].split(separator: ":").first.flatMap({ Int($0, radix: 16) })
                else { continue }
                timers.append(timer)
            }
        }
        return timers
    }
}
