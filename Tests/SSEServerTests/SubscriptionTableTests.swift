import Testing

@testable import SSEServer

@Suite("SubscriptionTable: one Redis subscription per channel per node")
struct SubscriptionTableTests {
    @Test("subscribe on the first client, unsubscribe after the last, across loops")
    func refcounting() {
        var table = SubscriptionTable()
        #expect(table.add(channel: "a", loop: 0) == .subscribe("a"))
        #expect(table.add(channel: "a", loop: 0) == .none)
        #expect(table.add(channel: "a", loop: 1) == .none)
        #expect(table.add(channel: "b", loop: 1) == .subscribe("b"))
        #expect(table.clientCount(for: "a") == 3)
        #expect(Set(table.loops(for: "a") ?? [:].keys) == [0, 1])
        #expect(table.remove(channel: "a", loop: 0) == .none)
        #expect(table.remove(channel: "a", loop: 1) == .none)
        #expect(Set(table.loops(for: "a") ?? [:].keys) == [0])
        #expect(table.remove(channel: "a", loop: 0) == .unsubscribe("a"))
        #expect(table.loops(for: "a") == nil)
        #expect(table.clientCount(for: "a") == 0)
        #expect(table.remove(channel: "b", loop: 1) == .unsubscribe("b"))
        #expect(table.channels.isEmpty)
    }

    @Test("a channel that comes back subscribes again")
    func resubscribe() {
        var table = SubscriptionTable()
        #expect(table.add(channel: "x", loop: 0) == .subscribe("x"))
        #expect(table.remove(channel: "x", loop: 0) == .unsubscribe("x"))
        #expect(table.add(channel: "x", loop: 1) == .subscribe("x"))
    }
}
