import Metrics
import NIOCore
import NIOEmbedded
import SSEWire
import Testing

@testable import SSEStreamCore

/// Paced flushes on one loop: deliveries close together leave in one flush per interval;
/// a delivery after a quiet interval leaves at once.
@Suite("LoopStreamRegistry: paced flushes")
struct LoopStreamRegistryPacingTests {
    static let allocator = ByteBufferAllocator()

    static func delivery(_ data: String) -> LoopDelivery {
        let event = EncodedEvent(ServerSentEvent(data: data), position: nil, allocator: allocator)
        var delivery = LoopDelivery()
        delivery.batches = [ChannelBatch(channel: "news", events: [event], allocator: allocator)]
        delivery.ordered = [RoutedEvent(channel: "news", event: event)]
        return delivery
    }

    static func chunk(_ data: String) -> String {
        let body = "data:\(data)\n\n"
        return String(body.utf8.count, radix: 16) + "\r\n" + body + "\r\n"
    }

    @Test("a delivery after a quiet interval leaves at once; those within the interval of the last flush wait for it and leave together, in order")
    func paced() throws {
        let (loop, _, channel, handler) = try StreamConnectionHandlerTests.connectedStream(["news"])
        let registry = LoopStreamRegistry(eventLoop: loop, allocator: Self.allocator, metrics: BrokerMetrics(factory: NOOPMetricsHandler.instance), flushInterval: .milliseconds(2))
        registry.add(try #require(handler.client))

        registry.deliver(Self.delivery("one"), flushNow: true)
        #expect(try StreamConnectionHandlerTests.readAll(channel) == Self.chunk("one"), "the first leaves at once")

        loop.advanceTime(by: .microseconds(500))
        registry.deliver(Self.delivery("two"), flushNow: true)
        registry.deliver(Self.delivery("three"))
        loop.run()
        #expect(try StreamConnectionHandlerTests.readAll(channel) == "", "within the interval: written, not flushed")
        loop.advanceTime(by: .microseconds(1400))
        #expect(try StreamConnectionHandlerTests.readAll(channel) == "", "still within the interval")
        loop.advanceTime(by: .microseconds(100))
        #expect(try StreamConnectionHandlerTests.readAll(channel) == Self.chunk("two") + Self.chunk("three"), "both at the interval's end, in order")

        loop.advanceTime(by: .milliseconds(10))
        registry.deliver(Self.delivery("four"), flushNow: true)
        #expect(try StreamConnectionHandlerTests.readAll(channel) == Self.chunk("four"), "after a quiet interval: at once")
        registry.remove(try #require(handler.client))
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("with a zero interval every delivery asked to flush now leaves at once")
    func unpaced() throws {
        let (loop, _, channel, handler) = try StreamConnectionHandlerTests.connectedStream(["news"])
        let registry = LoopStreamRegistry(eventLoop: loop, allocator: Self.allocator, metrics: BrokerMetrics(factory: NOOPMetricsHandler.instance), flushInterval: .zero)
        registry.add(try #require(handler.client))
        for data in ["a", "b", "c"] {
            registry.deliver(Self.delivery(data), flushNow: true)
            #expect(try StreamConnectionHandlerTests.readAll(channel) == Self.chunk(data))
        }
        registry.remove(try #require(handler.client))
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}
