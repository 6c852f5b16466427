import NIOCore
import SSEWire
import Testing

@testable import SSEStreamCore

@Suite("Fan-out plan: one read of the subscription grouped per loop and channel")
struct FanOutPlanTests {
    static let allocator = ByteBufferAllocator()

    static func event(_ text: String, at sequence: UInt64? = nil) -> EncodedEvent {
        EncodedEvent(ServerSentEvent(data: text), position: sequence.map { HistoryPosition(epoch: 1, sequence: $0) }, allocator: allocator)
    }

    static func texts(_ events: [RoutedEvent]) -> [String] { events.map { String(buffer: $0.event.raw) } }

    @Test("each loop gets the events routed to it in publish order, and one batch per channel in first-appearance order")
    func grouping() {
        var plan = FanOutPlan(loopCount: 3)
        plan.add(Self.event("a1"), channel: "a", loops: [0, 2])
        plan.add(Self.event("b1"), channel: "b", loops: [1, 2])
        plan.add(Self.event("a2"), channel: "a", loops: [0, 2])
        plan.add(Self.event("c1"), channel: "c", loops: [])
        let deliveries = plan.deliveries(allocator: Self.allocator)
        #expect(deliveries.count == 3)
        #expect(Self.texts(deliveries[0].ordered) == ["data:a1\n\n", "data:a2\n\n"])
        #expect(Self.texts(deliveries[1].ordered) == ["data:b1\n\n"])
        #expect(Self.texts(deliveries[2].ordered) == ["data:a1\n\n", "data:b1\n\n", "data:a2\n\n"])
        #expect(deliveries[2].batches.map(\.channel) == ["a", "b"])
        #expect(String(buffer: deliveries[2].batches[0].raw) == "data:a1\n\ndata:a2\n\n")
        #expect(deliveries[0].batches.map(\.channel) == ["a"])
        #expect(deliveries[1].batches.map(\.channel) == ["b"])
    }

    @Test("a channel's batch is built once and shared by every loop it goes to")
    func sharedBatch() {
        var plan = FanOutPlan(loopCount: 2)
        plan.add(Self.event("x"), channel: "a", loops: [0, 1])
        plan.add(Self.event("y"), channel: "a", loops: [0, 1])
        let deliveries = plan.deliveries(allocator: Self.allocator)
        #expect(deliveries[0].batches[0].chunked == deliveries[1].batches[0].chunked)
        #expect(deliveries[0].batches[0].events.count == 2)
    }

    @Test("the newest position per channel is kept, whatever the order; events without one add none")
    func newest() {
        var plan = FanOutPlan(loopCount: 1)
        plan.add(Self.event("5", at: 5), channel: "a", loops: [0])
        plan.add(Self.event("3", at: 3), channel: "a", loops: [0])
        plan.add(Self.event("plain"), channel: "b", loops: [0])
        #expect(plan.newest == ["a": HistoryPosition(epoch: 1, sequence: 5)])
    }

    @Test("a route to a loop that does not exist is ignored")
    func badRoute() {
        var plan = FanOutPlan(loopCount: 1)
        plan.add(Self.event("x"), channel: "a", loops: [0, 7, -1])
        let deliveries = plan.deliveries(allocator: Self.allocator)
        #expect(deliveries.count == 1)
        #expect(deliveries[0].ordered.count == 1)
    }
}
