import Logging
import Metrics
import NIOCore
import NIOEmbedded
import SSERedis
import SSEWire
import Testing

@testable import SSEStreamCore

/// The standalone node's NIO sink, byte-exact through `EmbeddedChannel`: a hub whose Redis is
/// never connected (nothing here reads from Redis).
@Suite("StreamConnectionHandler: the NIO stream sink")
struct StreamConnectionHandlerTests {
    static let allocator = ByteBufferAllocator()

    static func makeHub(loop: EmbeddedEventLoop) throws -> StreamHub {
        let logger = Logger(label: "test")
        let redis = try RedisConfiguration(url: "redis://127.0.0.1:1/0")
        let configuration = StreamCoreConfiguration(redis: redis, history: .disabled)
        return StreamHub(
            group: loop,
            subscriber: try RedisSubscriber(redis: redis, logger: logger),
            history: nil,
            metrics: BrokerMetrics(factory: NOOPMetricsHandler.instance),
            configuration: configuration,
            logger: logger
        )
    }

    static func stream(_ channels: [ChannelName], hub: StreamHub, buffer: Int = 1024) -> StreamConnectionHandler {
        StreamConnectionHandler(
            channels: channels,
            resumeFrom: nil,
            isChunked: true,
            preamble: ByteBuffer(string: "PREAMBLE"),
            expiresAt: nil,
            hub: hub,
            clientBufferBytes: buffer,
            socket: -1
        )
    }

    /// A connected channel with a stream of `channels` on it, its opening bytes already read.
    static func connectedStream(_ channels: [ChannelName], buffer: Int = 1024) throws -> (loop: EmbeddedEventLoop, hub: StreamHub, channel: EmbeddedChannel, handler: StreamConnectionHandler) {
        let loop = EmbeddedEventLoop()
        let hub = try makeHub(loop: loop)
        let channel = EmbeddedChannel(loop: loop)
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        let handler = stream(channels, hub: hub, buffer: buffer)
        try channel.pipeline.syncOperations.addHandler(handler)
        #expect(try readAll(channel) == "PREAMBLE")
        return (loop, hub, channel, handler)
    }

    static func readAll(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    @Test("opening bytes first, then each delivery's chunks; the client is in the hub while open")
    func delivers() throws {
        let (_, hub, channel, handler) = try Self.connectedStream(["news"])
        #expect(hub.clientCount(for: "news") == 1)
        let event = EncodedEvent(ServerSentEvent(data: "hi"), position: nil, allocator: Self.allocator)
        let batch = ChannelBatch(channel: "news", events: [event], allocator: Self.allocator)
        #expect(handler.client?.enqueue(batch) == true)
        handler.client?.flushPending()
        #expect(try Self.readAll(channel) == "9\r\ndata:hi\n\n\r\n")
        #expect(handler.client?.enqueue(batch, flushNow: true) == false)
        #expect(try Self.readAll(channel) == "9\r\ndata:hi\n\n\r\n")
        _ = try channel.finish(acceptAlreadyClosed: true)
        #expect(hub.clientCount(for: "news") == 0)
    }

    @Test("quiesce ends the stream with the terminating chunk, leaves the hub and closes")
    func quiesce() throws {
        let (loop, hub, channel, _) = try Self.connectedStream(["a", "b"])
        #expect(hub.connectedCount == 1)
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        loop.run()
        #expect(try Self.readAll(channel) == "0\r\n\r\n")
        #expect(hub.connectedCount == 0)
        #expect(!channel.isActive)
    }

    @Test("a sink that is not writable but has nothing waiting keeps its client (the backlog, not writability, decides); finish leaves the hub")
    func notWritableNothingWaiting() throws {
        let (loop, hub, channel, handler) = try Self.connectedStream(["a"], buffer: 16)
        // The embedded channel sends everything at once; the client says it is full.
        handler.client?.sinkWritabilityChanged(isWritable: false)
        let big = EncodedEvent(text: Array(repeating: UInt8(ascii: "x"), count: 64), allocator: Self.allocator)
        // A non-writable sink whose backlog reads 0 keeps the client (nothing is waiting).
        #expect(handler.client?.enqueue(big) == true)
        #expect(channel.isActive)
        handler.client?.flushPending()
        _ = try Self.readAll(channel)
        #expect(hub.connectedCount == 1)
        handler.client?.finish()
        loop.run()
        #expect(hub.connectedCount == 0)
    }

    @Test("a client that disconnects leaves the hub; later deliveries are no-ops")
    func disconnect() throws {
        let (_, hub, channel, handler) = try Self.connectedStream(["a"])
        let client = try #require(handler.client)
        _ = try channel.close().wait()
        #expect(hub.connectedCount == 0)
        #expect(client.phase == .closed)
        let event = EncodedEvent(ServerSentEvent(data: "late"), position: nil, allocator: Self.allocator)
        #expect(client.enqueue(event) == false)
    }
}
