import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SSEAuth
import SSEEndpoints
import SSEPublisher
import SSERedis
import SSEWire
import Synchronization
import Testing

@testable import SSEServer
@testable import SSEStreamCore

/// Several publishes in flight on one keep-alive connection, through the node's real pipeline on
/// an `EmbeddedChannel`, with a backend whose publishes the test answers when it chooses: how many
/// are taken at once, the order of their answers, and every other request's place among them.
@Suite("Pipelined publishes on one connection")
struct PipelinedPublishTests {
    /// Publishes are held until the test answers them.
    final class HeldBackend: EndpointBackend {
        struct Held {
            let channel: String
            let data: String
            let answer: @Sendable (Result<PublishReceipt, RedisError>) -> Void
        }

        private let held = Mutex<[Held]>([])

        var count: Int { held.withLock { $0.count } }
        var channels: [String] { held.withLock { $0.map(\.channel) } }

        /// Answers publish `index` (in arrival order) with id `1-<index>`.
        func answer(_ index: Int) {
            let publish = held.withLock { $0[index] }
            publish.answer(.success(PublishReceipt(receivers: 1, id: "1-\(index)")))
        }

        var isSubscriptionConnected: Bool { true }
        var isSubscriptionDelivering: Bool { true }
        var refusedChannelCount: Int { 0 }
        func refusedChannels(among channels: [String]) -> [String] { [] }
        func metricsExposition() -> [UInt8] { [] }

        func publish(_ message: FlaskSSEMessage, channel: String, completion: @escaping @Sendable (Result<PublishReceipt, RedisError>) -> Void) {
            held.withLock { $0.append(Held(channel: channel, data: "\(message.data)", answer: completion)) }
        }

        func publish(_ messages: [FlaskSSEMessage], channel: String, completion: @escaping @Sendable (Result<[PublishReceipt], RedisError>) -> Void) {
            for message in messages {
                publish(message, channel: channel) { result in completion(result.map { [$0] }) }
            }
        }
    }

    struct Connection {
        let channel: EmbeddedChannel
        let backend: HeldBackend

        func send(_ text: String) throws {
            try channel.writeInbound(ByteBuffer(string: text))
        }

        /// What was written and flushed, once the loop ran what is queued (answers are flushed
        /// after the loop's pending tasks).
        func output() throws -> String {
            channel.embeddedEventLoop.run()
            return try HTTPPipelineTests.output(channel)
        }

        /// The status codes written so far, in order.
        func statuses(_ text: String) -> [String] {
            text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
        }
    }

    static func connection(_ configure: (inout BrokerConfiguration) -> Void = { _ in }) async throws -> Connection {
        var configuration = BrokerConfiguration(host: "127.0.0.1", port: 0, redis: try RedisConfiguration(url: "redis://127.0.0.1:1/0"), threads: 1)
        configuration.maxPayloadBytes = 4096
        configure(&configuration)
        var logger = Logger(label: "test.pipelined")
        logger.logLevel = .critical
        let loop = EmbeddedEventLoop()
        let backend = HeldBackend()
        let services = try await BrokerServices.make(configuration: configuration, group: loop, logger: logger, endpointBackend: backend)
        let channel = EmbeddedChannel(loop: loop)
        try HTTPPipeline.configure(channel.pipeline.syncOperations, services: services, socket: -1)
        channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 5000), promise: nil)
        channel.remoteAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 40000)
        return Connection(channel: channel, backend: backend)
    }

    static func publish(_ data: String, channel: String = "c", headers: String = "") -> String {
        let body = #"{"data": "\#(data)"}"#
        return "POST /publish?channel=\(channel) HTTP/1.1\r\nHost: localhost\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    static func answer(_ index: Int, connection: String = "keep-alive") -> String {
        let body = #"{"id": "1-\#(index)", "receivers": 1}"#
        return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: \(connection)\r\n\r\n\(body)"
    }

    @Test("pipelined publishes past the window: 64 taken at once, answered strictly in request order whatever order Redis answers in, the rest taken as room frees")
    func boundedAndOrdered() async throws {
        let window = HTTPRequestHandler.maxPipelinedPublishes
        #expect(window == 64)
        let total = window + 24
        let connection = try await Self.connection()
        try connection.send((0..<total).map { Self.publish("e\($0)") }.joined())
        #expect(connection.backend.count == window, "a full window in flight, no more")
        connection.backend.answer(1)
        connection.backend.answer(2)
        #expect(try connection.output() == "", "answers 1 and 2 wait for answer 0")
        #expect(connection.backend.count == window)
        connection.backend.answer(0)
        #expect(try connection.output() == Self.answer(0) + Self.answer(1) + Self.answer(2))
        #expect(connection.backend.count == window + 3, "three answered, three more taken")
        var index = 3
        while index < connection.backend.count {
            connection.backend.answer(index)
            index += 1
        }
        #expect(index == total)
        #expect(try connection.output() == (3..<total).map { Self.answer($0) }.joined())
        #expect(connection.channel.isActive, "keep-alive after all of them")
        _ = try? connection.channel.finish()
    }

    @Test("a connection holds at most --max-payload of publish bodies waiting for Redis")
    func boundedByBytes() async throws {
        let connection = try await Self.connection { $0.maxPayloadBytes = 100 }
        let data = String(repeating: "x", count: 40)  // a 53-byte body
        try connection.send((0..<6).map { _ in Self.publish(data) }.joined())
        #expect(connection.backend.count == 2, "the second body reaches 106 bytes held: no third is taken")
        connection.backend.answer(0)
        #expect(connection.backend.count == 3)
        _ = try? connection.channel.finish()
    }

    @Test("any other request waits for the publishes before it, is answered in its place, and holds back what follows it")
    func otherRequestsWaitTheirTurn() async throws {
        let connection = try await Self.connection()
        try connection.send(Self.publish("a") + Self.publish("b") + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + Self.publish("c"))
        #expect(connection.backend.count == 2, "the health check waits; the publish behind it is not taken")
        connection.backend.answer(1)
        #expect(try connection.output() == "")
        connection.backend.answer(0)
        let health = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: keep-alive\r\n\r\n{\"status\": \"ok\"}"
        #expect(try connection.output() == Self.answer(0) + Self.answer(1) + health)
        #expect(connection.backend.count == 3, "the publish after the health check is taken once it is answered")
        connection.backend.answer(2)
        #expect(try connection.output() == Self.answer(2))
        _ = try? connection.channel.finish()
    }

    @Test("a bad body in the middle gets its 400 in its place; the publishes around it are answered and the connection stays")
    func badBodyInPlace() async throws {
        let connection = try await Self.connection()
        let bad = "POST /publish?channel=c HTTP/1.1\r\nHost: localhost\r\nContent-Length: 9\r\n\r\n{\"no\": 1}"
        try connection.send(Self.publish("a") + bad + Self.publish("b"))
        #expect(connection.backend.count == 2)
        connection.backend.answer(1)
        connection.backend.answer(0)
        let text = try connection.output()
        #expect(connection.statuses(text) == ["200", "400", "200"])
        #expect(text.hasPrefix(Self.answer(0)) && text.hasSuffix(Self.answer(1)))
        #expect(connection.channel.isActive)
        _ = try? connection.channel.finish()
    }

    @Test("a publish refused from its head behind others: the earlier ones answered first, then 401 and close; nothing after it is published")
    func refusalClosesAfterEarlierAnswers() async throws {
        let connection = try await Self.connection { $0.access = AccessConfiguration(publishKey: "k") }
        let key = "Authorization: Bearer k\r\n"
        try connection.send(Self.publish("a", headers: key) + Self.publish("b", headers: key) + Self.publish("x", headers: "Authorization: Bearer wrong\r\n")
            + Self.publish("after", headers: key))
        #expect(connection.backend.count == 2)
        #expect(try connection.output() == "", "the refusal waits for the answers before it")
        connection.backend.answer(0)
        connection.backend.answer(1)
        connection.channel.embeddedEventLoop.run()
        let text = try connection.output()
        #expect(connection.statuses(text) == ["200", "200", "401"])
        #expect(text.contains("Connection: close"))
        #expect(connection.backend.count == 2, "the publish after the refusal is never taken")
        #expect(!connection.channel.isActive)
    }

    @Test("a malformed request behind pipelined publishes gets its 400 after their answers")
    func parserErrorAfterAnswers() async throws {
        let connection = try await Self.connection()
        try connection.send(Self.publish("a") + Self.publish("b") + "NOT HTTP AT ALL\r\n\r\n")
        #expect(connection.backend.count == 2)
        #expect(try connection.output() == "")
        connection.backend.answer(0)
        connection.backend.answer(1)
        connection.channel.embeddedEventLoop.run()
        let text = try connection.output()
        #expect(connection.statuses(text) == ["200", "200", "400"])
        #expect(!connection.channel.isActive)
    }

    @Test("a graceful shutdown with publishes in flight: every one answered, the last with Connection: close, then closed")
    func quiesceAnswersThenCloses() async throws {
        let connection = try await Self.connection()
        try connection.send(Self.publish("a") + Self.publish("b"))
        connection.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(connection.channel.isActive)
        try connection.send(Self.publish("late"))
        connection.backend.answer(0)
        connection.backend.answer(1)
        connection.channel.embeddedEventLoop.run()
        #expect(try connection.output() == Self.answer(0) + Self.answer(1, connection: "close"))
        #expect(connection.backend.count == 2, "nothing is taken after the shutdown asked")
        #expect(!connection.channel.isActive)
    }

    @Test("Expect: 100-continue behind a publish in flight: the 100 waits for the earlier answer")
    func continueWaitsItsTurn() async throws {
        let connection = try await Self.connection()
        let body = #"{"data": "c"}"#
        try connection.send(Self.publish("a")
            + "POST /publish?channel=c HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
        #expect(try connection.output() == "")
        connection.backend.answer(0)
        #expect(try connection.output() == Self.answer(0) + "HTTP/1.1 100 Continue\r\n\r\n")
        try connection.send(body)
        #expect(connection.backend.count == 2)
        guard connection.backend.count == 2 else { return }
        connection.backend.answer(1)
        #expect(try connection.output() == Self.answer(1))
        _ = try? connection.channel.finish()
    }
}
