import Foundation
import Logging
import SSEDemo
import SSERedis
import SSEServer

/// A broker node running in the test process on a free port, against a test Redis.
final class BrokerNode: Sendable {
    let server: BrokerServer
    let port: Int

    init(redis: RedisConfiguration, configure: (inout BrokerConfiguration) -> Void = { _ in }) async throws {
        var configuration = BrokerConfiguration(host: "127.0.0.1", port: 0, redis: redis, threads: 2, heartbeatSeconds: 0)
        configuration.subscriber = .init(backoffBaseMilliseconds: 50, backoffCapMilliseconds: 500, pingIntervalMilliseconds: 1000)
        configure(&configuration)
        var logger = Logger(label: "test.broker")
        // SSE_TEST_LOG_LEVEL=info (or debug, trace) to see more of what the nodes do.
        logger.logLevel = ProcessInfo.processInfo.environment["SSE_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        // With `demo`, the demo is mounted as the executable mounts it.
        let server = try await BrokerServer(
            configuration: configuration,
            logger: logger,
            extensionFactory: configuration.demo
                ? DemoRoutes.factory(redis: configuration.redis, nodeName: configuration.nodeName, maxTasks: configuration.maxDemoTasks)
                : nil
        )
        // A start that throws has shut the node down itself; one that started but does not come
        // up is shut down here, so a failing set-up leaves no node behind.
        try await server.start()
        do {
            guard let port = server.localPort else { throw TestFailure("the node did not bind") }
            try await eventually("the node's Redis subscription") { server.isSubscriptionConnected }
            self.server = server
            self.port = port
        } catch {
            await server.shutdown()
            throw error
        }
    }

    /// Opens a stream of `channel` on this node.
    func stream(_ channel: String) async throws -> StreamClient {
        try await StreamClient.open(port: port, "/stream?channel=\(channel)")
    }

    /// Sends one complete request and waits for the whole response.
    func request(_ method: String, _ target: String, body: [UInt8] = [], headers: [String: String] = [:]) async throws -> HTTPResponse {
        try await sendRequest(port: port, method, target, body: body, headers: headers)
    }

    func shutdown() async {
        await server.shutdown()
    }
}

/// Sends one complete request to `port` on loopback and waits for the whole response.
func sendRequest(port: Int, _ method: String, _ target: String, body: [UInt8] = [], headers: [String: String] = [:]) async throws -> HTTPResponse {
    let connection = try await TestConnection.connect(port: port)
    defer { Task { await connection.close() } }
    var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
    for (name, value) in headers.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
    try await connection.send(Array((head + "\r\n").utf8) + body)
    try await connection.waitForClose()
    guard let response = try HTTPResponse.parse(connection.received) else {
        throw TestFailure("no HTTP response to \(method) \(target)")
    }
    return response
}
