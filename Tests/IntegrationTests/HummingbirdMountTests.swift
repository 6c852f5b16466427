#if Hummingbird
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import MetricsTestKit
import NIOCore
import SSEAuth
import SSEHummingbird
import SSERedis
import ServiceLifecycle
import Testing

/// An app's request context that knows the peer, as the broker's open-publishing rule needs.
struct PeerContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// A Hummingbird app with routes of its own and the broker mounted, on a free loopback port.
final class MountedApp: Sendable {
    let port: Int
    let broker: SSEBroker
    private let group: ServiceGroup
    private let running: Task<Void, any Error>

    private init(port: Int, broker: SSEBroker, group: ServiceGroup, running: Task<Void, any Error>) {
        self.port = port
        self.broker = broker
        self.group = group
        self.running = running
    }

    static func start(
        redis: RedisConfiguration,
        configure: (inout SSEBroker.Configuration) -> Void = { _ in },
        metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        grants: (@Sendable (Request, PeerContext) -> SSEBroker.Grants?)? = nil
    ) async throws -> MountedApp {
        var logger = Logger(label: "test.hummingbird")
        logger.logLevel = .warning
        var configuration = SSEBroker.Configuration(redis: redis)
        configuration.stream.subscriber = .init(backoffBaseMilliseconds: 50, backoffCapMilliseconds: 500, pingIntervalMilliseconds: 1000)
        configure(&configuration)
        let broker = try await SSEBroker(configuration: configuration, metricsFactory: metrics, logger: logger)
        let router = Router(context: PeerContext.self)
        router.get("/hello") { _, _ in "the app's own route\n" }
        broker.addRoutes(to: router, grants: grants)
        let bound = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            services: [broker],
            onServerRunning: { channel in
                bound.continuation.yield(channel.localAddress?.port ?? 0)
                bound.continuation.finish()
            },
            logger: logger
        )
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let running = Task { try await group.run() }
        var ports = bound.stream.makeAsyncIterator()
        guard let port = await ports.next(), port > 0 else {
            running.cancel()
            throw TestFailure("the Hummingbird app did not bind")
        }
        let mounted = MountedApp(port: port, broker: broker, group: group, running: running)
        do {
            try await eventually("the mounted broker's Redis subscription") { broker.isReady }
        } catch {
            await mounted.shutdown()
            throw error
        }
        return mounted
    }

    func stream(_ target: String, headers: [String: String] = [:]) async throws -> StreamClient {
        try await StreamClient.open(port: port, target, headers: headers)
    }

    func request(_ method: String, _ target: String, body: [UInt8] = [], headers: [String: String] = [:]) async throws -> HTTPResponse {
        try await sendRequest(port: port, method, target, body: body, headers: headers)
    }

    /// A graceful shutdown of the app and the broker; returns once both have stopped.
    func shutdown() async {
        await group.triggerGracefulShutdown()
        _ = try? await running.value
    }
}

/// Runs `body` with a started app, shut down however `body` ends.
func withMountedApp<Result>(
    redis: RedisConfiguration,
    configure: (inout SSEBroker.Configuration) -> Void = { _ in },
    metrics: any MetricsFactory = NOOPMetricsHandler.instance,
    grants: (@Sendable (Request, PeerContext) -> SSEBroker.Grants?)? = nil,
    _ body: (MountedApp) async throws -> Result
) async throws -> Result {
    let app = try await MountedApp.start(redis: redis, configure: configure, metrics: metrics, grants: grants)
    return try await ensuring({ try await body(app) }, finally: { await app.shutdown() })
}

@Suite("The broker mounted in a Hummingbird app", .timeLimit(.minutes(2)))
struct HummingbirdMountTests {
    static func publishBody(_ data: String, type: String? = nil) -> [UInt8] {
        var object = #"{"data": \#(data)"#
        if let type { object += #", "type": "\#(type)""# }
        return Array((object + "}").utf8)
    }

    /// The `id:` of an event's text.
    static func id(of event: String) throws -> String {
        guard let line = event.split(separator: "\n").first(where: { $0.hasPrefix("id:") }) else {
            throw TestFailure("no id in \(event)")
        }
        return String(line.dropFirst(3))
    }

    @Test("an app and a standalone node on one Redis deliver byte-identical streams and resume each other's ids")
    func sameBytesAndResume() async throws {
        try await withRedis { redis in
            let configuration = try redis.configuration
            try await withNode(redis: configuration) { node in
                try await withMountedApp(redis: configuration) { app in
                    let onNode = try await node.stream("mixed")
                    let onApp = try await app.stream("/stream?channel=mixed")
                    try await redis.waitForSubscribers("mixed", count: 2)
                    let bodies: [(port: Int, body: [UInt8])] = [
                        (node.port, Self.publishBody(#""plain text""#)),
                        (app.port, Self.publishBody(#"{"n": 1, "text": "line one\nline two"}"#, type: "update")),
                        (node.port, Self.publishBody("[1, 2.5, null, true]")),
                        (app.port, Self.publishBody(#""unicode é ✓""#)),
                        (app.port, Self.publishBody("42", type: "count")),
                        (node.port, Self.publishBody(#"{"last": true}"#)),
                    ]
                    for (port, body) in bodies {
                        let answer = try await sendRequest(port: port, "POST", "/publish?channel=mixed", body: body, headers: ["Content-Type": "application/json"])
                        #expect(answer.status == 200, "publish answered \(answer.status): \(String(decoding: answer.body, as: UTF8.self))")
                    }
                    let fromNode = try await onNode.waitForEvents(bodies.count)
                    let fromApp = try await onApp.waitForEvents(bodies.count)
                    #expect(fromNode == fromApp)
                    #expect(try await onApp.head().header("content-type") == "text/event-stream; charset=utf-8")
                    #expect(try await onApp.head().header("cache-control") == "no-cache")
                    // The app resumes after an id the node issued, and the node after one the app issued.
                    let resumedOnApp = try await app.stream("/stream?channel=mixed", headers: ["Last-Event-ID": try Self.id(of: fromNode[1])])
                    #expect(try await resumedOnApp.waitForEvents(4) == Array(fromNode[2...]))
                    let resumedOnNode = try await StreamClient.open(port: node.port, "/stream?channel=mixed", headers: ["Last-Event-ID": try Self.id(of: fromApp[3])])
                    #expect(try await resumedOnNode.waitForEvents(2) == Array(fromNode[4...]))
                    for client in [onNode, onApp, resumedOnApp, resumedOnNode] { await client.close() }
                }
            }
        }
    }

    @Test("on a Redis Cluster: an app and a standalone node deliver the same streams over channels on three shards, and resume each other's ids")
    func onCluster() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let configuration = try RedisConfiguration(url: cluster.url)
            let channels = try await ClusterModeTests.channelsOnDistinctShards(cluster, count: 3, prefix: "mount")
            try await withNode(redis: configuration) { node in
                try await withMountedApp(redis: configuration) { app in
                    let target = "/stream?" + channels.map { "channel=\($0)" }.joined(separator: "&")
                    let onNode = try await StreamClient.open(port: node.port, target)
                    let onApp = try await app.stream(target)
                    for channel in channels { try await ClusterModeTests.waitForSubscribers(cluster, channel, count: 2) }
                    for (index, channel) in channels.enumerated() {
                        let port = index % 2 == 0 ? node.port : app.port
                        let answer = try await sendRequest(
                            port: port, "POST", "/publish?channel=\(channel)", body: Self.publishBody("\(index)"), headers: ["Content-Type": "application/json"]
                        )
                        #expect(answer.status == 200, "publish answered \(answer.status): \(String(decoding: answer.body, as: UTF8.self))")
                    }
                    let fromNode = try await onNode.waitForEvents(channels.count)
                    #expect(try await onApp.waitForEvents(channels.count) == fromNode)
                    let resumed = try await app.stream(target, headers: ["Last-Event-ID": try Self.id(of: fromNode[0])])
                    #expect(try await resumed.waitForEvents(channels.count - 1) == Array(fromNode[1...]))
                    for client in [onNode, onApp, resumed] { await client.close() }
                }
            }
        }
    }

    @Test("grants from the app's own authentication decide streams and publishes; HEAD, preflight, 400 and 413 as on the node")
    func grantsAndLimits() async throws {
        try await withRedis { redis in
            let grants: @Sendable (Request, PeerContext) -> SSEBroker.Grants? = { request, _ in
                guard let user = request.headers[HTTPField.Name("X-User")!] else { return nil }
                return SSEBroker.Grants(ChannelGrants(subscribe: ["user.\(user).*"], publish: ["user.\(user).inbox"]))
            }
            try await withMountedApp(redis: try redis.configuration, configure: { $0.corsOrigins = ["https://app.example"]; $0.stream.maxPayloadBytes = 64 }, grants: grants) { app in
                let own = try await app.request("GET", "/hello")
                #expect(String(decoding: own.body, as: UTF8.self) == "the app's own route\n")
                let allowed = try await app.stream("/stream?channel=user.alice.inbox", headers: ["X-User": "alice"])
                #expect(try await allowed.head().status == 200)
                let forbidden = try await app.request("GET", "/stream?channel=user.bob.inbox", headers: ["X-User": "alice"])
                #expect(forbidden.status == 403)
                let published = try await app.request("POST", "/publish?channel=user.alice.inbox", body: Self.publishBody(#""hi""#), headers: ["X-User": "alice"])
                #expect(published.status == 200)
                let delivered = try await allowed.waitForEvents(1)
                #expect(delivered.first?.hasPrefix("data:hi\nid:") == true, "delivered \(delivered)")
                let notGranted = try await app.request("POST", "/publish?channel=user.alice.other", body: Self.publishBody(#""hi""#), headers: ["X-User": "alice"])
                #expect(notGranted.status == 403)
                // Without grants, the broker's own rules: open publishing only from a loopback
                // peer with no proxy headers.
                let anonymous = try await app.request("POST", "/publish?channel=news", body: Self.publishBody(#""hi""#))
                #expect(anonymous.status == 200)
                let proxied = try await app.request("POST", "/publish?channel=news", body: Self.publishBody(#""hi""#), headers: ["X-Forwarded-For": "203.0.113.9"])
                #expect(proxied.status == 403)
                let head = try await app.request("HEAD", "/stream?channel=news")
                #expect(head.status == 200)
                #expect(head.header("content-type") == "text/event-stream; charset=utf-8")
                let badChannel = try await app.request("GET", "/stream?channel=" + String(repeating: "x", count: 300))
                #expect(badChannel.status == 400)
                let tooLarge = try await app.request("POST", "/publish?channel=user.alice.inbox", body: Array(repeating: UInt8(ascii: " "), count: 65), headers: ["X-User": "alice"])
                #expect(tooLarge.status == 413)
                let preflight = try await app.request("OPTIONS", "/publish", headers: ["Origin": "https://app.example", "Access-Control-Request-Method": "POST"])
                #expect(preflight.status == 204)
                #expect(preflight.header("access-control-allow-origin") == "https://app.example")
                try await eventually("only the allowed stream open") { app.broker.core.streamCount == 1 }
                await allowed.close()
                try await eventually("the closed stream gone") { app.broker.core.streamCount == 0 }
            }
        }
    }

    @Test("the mounted broker's metrics go to the app's metrics factory, named as on the node")
    func metricsReachTheAppsFactory() async throws {
        let metrics = TestMetrics()
        try await withRedis { redis in
            try await withMountedApp(redis: try redis.configuration, metrics: metrics) { app in
                let stream = try await app.stream("/stream?channel=m")
                try await redis.waitForSubscribers("m", count: 1)
                let published = try await app.request("POST", "/publish?channel=m", body: Self.publishBody(#""x""#))
                #expect(published.status == 200)
                _ = try await stream.waitForEvents(1)
                #expect(try metrics.expectCounter("sse_publishes_total").totalValue == 1)
                #expect(try metrics.expectGauge("sse_connected_clients").lastValue == 1)
                try await eventually("the delivery counted") { (try? metrics.expectCounter("sse_events_delivered_total").totalValue) == 1 }
                await stream.close()
                try await eventually("the stream's end counted") { (try? metrics.expectGauge("sse_connected_clients").lastValue) == 0 }
            }
        }
    }

    @Test("a graceful shutdown of the app ends its open streams and finishes")
    func gracefulShutdownEndsStreams() async throws {
        try await withRedis { redis in
            let app = try await MountedApp.start(redis: try redis.configuration)
            let streams = [try await app.stream("/stream?channel=a"), try await app.stream("/stream?channel=a&channel=b")]
            try await eventually("both streams open") { app.broker.core.streamCount == 2 }
            let started = ContinuousClock.now
            await app.shutdown()
            #expect(started.duration(to: .now) < .seconds(10))
            for stream in streams {
                try await stream.connection.waitForClose(timeout: .seconds(5))
                await stream.close()
            }
        }
    }
}
#endif
