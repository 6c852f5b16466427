import SSEWire
import Testing

@testable import SSEStreamCore

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
        #expect(table.channelCount == 0)
    }

    @Test("a channel that comes back subscribes again")
    func resubscribe() {
        var table = SubscriptionTable()
        #expect(table.add(channel: "x", loop: 0) == .subscribe("x"))
        #expect(table.remove(channel: "x", loop: 0) == .unsubscribe("x"))
        #expect(table.add(channel: "x", loop: 1) == .subscribe("x"))
    }

    @Test("canonically equivalent names are two channels, as they are two Redis channels")
    func namesAreBytes() {
        var table = SubscriptionTable()
        #expect(table.add(channel: ChannelName("caf\u{E9}"), loop: 0) == .subscribe(ChannelName("caf\u{E9}")))
        #expect(table.add(channel: ChannelName("cafe\u{301}"), loop: 0) == .subscribe(ChannelName("cafe\u{301}")))
        #expect(table.clientCount(for: ChannelName("caf\u{E9}")) == 1)
        #expect(table.channelCount == 2)
    }

    @Test("a channel's position lives exactly as long as the channel has clients; a new channel starts at the newest known position")
    func positions() {
        var table = SubscriptionTable()
        let early = HistoryPosition(epoch: 7, sequence: 3)
        let later = HistoryPosition(epoch: 7, sequence: 9)
        _ = table.add(channel: "a", loop: 0)
        #expect(table.position(of: "a") == nil)
        table.advance("a", to: later)
        table.advance("a", to: early)
        #expect(table.position(of: "a") == later)
        _ = table.add(channel: "b", loop: 1)
        #expect(table.position(of: "b") == later)
        #expect(table.remove(channel: "a", loop: 0) == .unsubscribe("a"))
        // A late answer for a channel nobody wants any more leaves nothing behind.
        table.advance("a", to: HistoryPosition(epoch: 7, sequence: 12))
        #expect(table.position(of: "a") == nil)
        #expect(table.channelCount == 1)
        #expect(table.newest == HistoryPosition(epoch: 7, sequence: 12))
    }

    @Test("channels first wanted before the node knew any position start at the first one it learns, not at a later newest")
    func positionsBeforeFirstObservation() {
        var table = SubscriptionTable()
        _ = table.add(channel: "a", loop: 0)
        _ = table.add(channel: "b", loop: 1)
        let first = HistoryPosition(epoch: 0, sequence: 0)
        table.observe(first)
        // After an outage the counter read moves the newest past what was published meanwhile;
        // a catch-up of "a" and "b" must still start where they stood.
        table.observe(HistoryPosition(epoch: 7, sequence: 20))
        #expect(table.position(of: "a") == first)
        #expect(table.position(of: "b") == first)
        #expect(table.positions == ["a": first, "b": first])
        // A channel first wanted later starts at the newest position known then.
        _ = table.add(channel: "c", loop: 0)
        #expect(table.position(of: "c") == HistoryPosition(epoch: 7, sequence: 20))
    }
}
