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

    @Test("a heartbeat's flush does not pace: a delivery right after it leaves at once, while one right after a delivery's flush still waits")
    func heartbeatsDoNotPace() throws {
        let (loop, hub, channel, handler) = try StreamConnectionHandlerTests.connectedStream(["news"])
        let client = try #require(handler.client)
        // Out of the hub's own registry, whose heartbeat ring holds it, into this one's.
        hub.unregister(client, on: loop)
        let registry = LoopStreamRegistry(eventLoop: loop, allocator: Self.allocator, metrics: BrokerMetrics(factory: NOOPMetricsHandler.instance), flushInterval: .milliseconds(5))
        registry.add(client)

        // A new heartbeat round, then a moment into it: its one client is due.
        let round = NIODeadline.now() + .seconds(16)
        registry.sendHeartbeats(now: round)
        registry.sendHeartbeats(now: round + .milliseconds(14_900))
        loop.run()
        #expect(try StreamConnectionHandlerTests.readAll(channel) != "", "the heartbeat left")
        loop.advanceTime(by: .microseconds(200))
        registry.deliver(Self.delivery("one"), flushNow: true)
        #expect(try StreamConnectionHandlerTests.readAll(channel) == Self.chunk("one"), "200 µs after a heartbeat: at once")
        loop.advanceTime(by: .microseconds(200))
        registry.deliver(Self.delivery("two"), flushNow: true)
        loop.run()
        #expect(try StreamConnectionHandlerTests.readAll(channel) == "", "200 µs after a delivery: paced")
        loop.advanceTime(by: .milliseconds(5))
        #expect(try StreamConnectionHandlerTests.readAll(channel) == Self.chunk("two"))
        registry.remove(client)
        hub.register(client, on: loop)  // back, so its close leaves the hub as it came
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("events further apart than the interval on average are never held: a pair that comes close together at a low rate leaves at once; at a high rate the same pair waits")
    func pacingFollowsTheRate() throws {
        let (loop, _, channel, handler) = try StreamConnectionHandlerTests.connectedStream(["news"])
        let registry = LoopStreamRegistry(eventLoop: loop, allocator: Self.allocator, metrics: BrokerMetrics(factory: NOOPMetricsHandler.instance), flushInterval: .milliseconds(5))
        registry.add(try #require(handler.client))

        // 100 events/s: 10 ms apart, each at once.
        for index in 0..<40 {
            loop.advanceTime(by: .milliseconds(10))
            registry.deliver(Self.delivery("slow\(index)"), flushNow: true)
            #expect(try StreamConnectionHandlerTests.readAll(channel) == Self.chunk("slow\(index)"))
        }
        loop.advanceTime(by: .milliseconds(1))
        registry.deliver(Self.delivery("close"), flushNow: true)
        #expect(try StreamConnectionHandlerTests.readAll(channel) == Self.chunk("close"), "1 ms after the last, at a low rate: at once")

        // 500 events/s: 2 ms apart. Once the average says so, deliveries are paced.
        var written = ""
        var expected = ""
        for index in 0..<40 {
            loop.advanceTime(by: .milliseconds(2))
            registry.deliver(Self.delivery("fast\(index)"), flushNow: true)
            expected += Self.chunk("fast\(index)")
            written += try StreamConnectionHandlerTests.readAll(channel)
        }
        #expect(written != expected, "at 500 events/s some deliveries were held for the interval")
        loop.advanceTime(by: .milliseconds(1))
        registry.deliver(Self.delivery("held"), flushNow: true)
        #expect(try StreamConnectionHandlerTests.readAll(channel) == "", "1 ms after the last, at a high rate: held")
        loop.advanceTime(by: .milliseconds(5))
        written += try StreamConnectionHandlerTests.readAll(channel)
        #expect(written == expected + Self.chunk("held"), "every event, in order, once the interval passed")
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
