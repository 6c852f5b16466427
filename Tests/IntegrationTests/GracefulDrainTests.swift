import Foundation
import SSEServer
import Testing

@Suite("Graceful drain", .timeLimit(.minutes(2)))
struct GracefulDrainTests {
    @Test("SIGTERM and SIGINT: stop accepting, end every stream with the terminating chunk, exit 0", arguments: [SIGTERM, SIGINT])
    func drainOnSignal(_ signal: Int32) async throws {
        let redis = try await RedisServerProcess()
        let broker = try await BrokerProcess(redisURL: redis.url(), arguments: ["--drain-timeout", "5"])
        var clients: [StreamClient] = []
        for index in 0..<20 { clients.append(try await StreamClient.open(port: broker.port, "/stream?channel=drain-\(index % 3)")) }
        let idle = try await TestConnection.connect(port: broker.port)  // keep-alive HTTP, between requests
        try await idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try await idle.waitFor("a health answer") { String(decoding: $0, as: UTF8.self).contains("\"ok\"") }
        #expect(try await broker.stop(signal: signal) == 0, "\(broker.child.text)")
        for client in clients {
            try await client.connection.waitForClose()
            #expect(try #require(try HTTPResponse.parse(client.connection.received)).chunkedComplete)
        }
        try await idle.waitForClose()
        #expect(!(try FreePort.isListening(broker.port)))
    }

    @Test("a connection that will not finish is closed at --drain-timeout and the node still exits 0")
    func drainTimeout() async throws {
        let redis = try await RedisServerProcess()
        let broker = try await BrokerProcess(redisURL: redis.url(), arguments: ["--drain-timeout", "1"])
        let stuck = try await TestConnection.connect(port: broker.port)
        try await stuck.send("POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"data\":")  // body never completes
        try await Task.sleep(for: .milliseconds(100))
        let started = ContinuousClock.now
        #expect(try await broker.stop(signal: SIGTERM, timeout: .seconds(10)) == 0)
        print("drain with a stuck request took \(started.duration(to: .now)) (drain timeout 1 s)")
        try await stuck.waitForClose()
    }

    @Test("a stream request still in flight when the drain begins becomes a stream that ends at once")
    func drainDuringStreamRequest() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.drainTimeoutSeconds = 30 }
        let connection = try await TestConnection.connect(port: node.port)
        // The request does not end until its one-byte body arrives, so the shutdown's request to
        // finish comes while it is in flight.
        try await connection.send("GET /stream?channel=late HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n")
        try await Task.sleep(for: .milliseconds(100))
        let drain = Task { await node.shutdown() }
        try await eventually("the node to stop listening") { !((try? FreePort.isListening(node.port)) ?? true) }
        try await Task.sleep(for: .milliseconds(100))
        try await connection.send("x")
        // Well before the 30 s drain timeout: the stream starts, then ends cleanly.
        try await connection.waitForClose(timeout: .seconds(10))
        let response = try #require(try HTTPResponse.parse(connection.received))
        #expect(response.status == 200)
        #expect(response.chunkedComplete)
        await drain.value
    }

    @Test("start() twice, or after shutdown(), is refused and leaves no socket listening")
    func startRefusals() async throws {
        try await withRedis { redis in
            try await withNode(redis: try redis.configuration) { node in
                await #expect(throws: BrokerServerError.self) { try await node.server.start() }
                #expect(try await node.request("GET", "/healthz").status == 200)
                await node.shutdown()
                #expect(!(try FreePort.isListening(node.port)))
                let port = try FreePort.next()
                var configuration = node.server.configuration
                configuration.port = port
                let stopped = try await BrokerServer(configuration: configuration, logger: .init(label: "test"))
                await stopped.shutdown()
                await #expect(throws: BrokerServerError.self) { try await stopped.start() }
                #expect(!(try FreePort.isListening(port)))
            }
        }
    }

    @Test("an in-process node drains its streams on shutdown()")
    func inProcessDrain() async throws {
        try await withRedis { redis in
            try await withNode(redis: try redis.configuration) { node in
                let client = try await node.stream("bye")
                try await redis.waitForSubscribers("bye", count: 1)
                await node.shutdown()
                try await client.connection.waitForClose()
                #expect(try #require(try HTTPResponse.parse(client.connection.received)).chunkedComplete)
                try await redis.waitForSubscribers("bye", count: 0)
            }
        }
    }
}
