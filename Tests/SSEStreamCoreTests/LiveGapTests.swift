import SSEWire
import Testing

@testable import SSEStreamCore

/// `StreamHub.liveGaps`: with positions per channel each channel's counter counts one per
/// event, so a verified live position more than one past the one before it shows events that
/// never reached the subscription.
@Suite("Live gaps in per-channel positions")
struct LiveGapTests {
    static func at(_ sequence: UInt64, epoch: UInt64 = 7) -> HistoryPosition { HistoryPosition(epoch: epoch, sequence: sequence) }

    static func table(_ positions: [ChannelName: HistoryPosition]) -> SubscriptionTable {
        var table = SubscriptionTable(positionsPerChannel: true)
        for (channel, position) in positions {
            _ = table.add(channel: channel, loop: 0)
            table.advance(channel, to: position)
        }
        _ = table.add(channel: "fresh", loop: 0)
        return table
    }

    @Test("consecutive positions after the node's last are no gap; a skip past it, or between two events of one read, is, from where the channel stood before the read (the read's own events are not delivered yet)")
    func skips() {
        let table = Self.table(["a": Self.at(3), "b": Self.at(10)])
        #expect(StreamHub.liveGaps(in: [("a", Self.at(4)), ("a", Self.at(5)), ("b", Self.at(11))], table: table).isEmpty)
        #expect(StreamHub.liveGaps(in: [("a", Self.at(6))], table: table) == ["a": Self.at(3)])
        #expect(StreamHub.liveGaps(in: [("a", Self.at(4)), ("b", Self.at(11)), ("a", Self.at(7))], table: table) == ["a": Self.at(3)])
    }

    @Test("no gap from positions at or before the last (late or repeated), from events without a verified position, across epochs, or on a channel whose position the node does not know yet")
    func noFalseGaps() {
        let table = Self.table(["a": Self.at(3)])
        #expect(StreamHub.liveGaps(in: [("a", Self.at(2)), ("a", Self.at(3)), ("a", Self.at(4))], table: table).isEmpty)
        #expect(StreamHub.liveGaps(in: [("a", nil), ("a", Self.at(4))], table: table).isEmpty)
        #expect(StreamHub.liveGaps(in: [("a", Self.at(9, epoch: 8))], table: table).isEmpty, "a new epoch is the epoch check's")
        #expect(StreamHub.liveGaps(in: [("fresh", Self.at(40)), ("fresh", Self.at(41))], table: table).isEmpty)
        #expect(StreamHub.liveGaps(in: [("fresh", Self.at(40)), ("fresh", Self.at(45))], table: table) == ["fresh": Self.at(39)], "just before the read's first")
    }
}
