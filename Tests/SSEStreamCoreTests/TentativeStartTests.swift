import NIOCore
import SSEWire
import Testing

@testable import SSEStreamCore

/// A new stream's start read from a channel's counter after the stream was registered
/// (`.freshStart` with positions per channel): the read may run after events that reach the
/// stream live, so the start is tentative and never drops them.
@Suite("Tentative stream starts")
struct TentativeStartTests {
    typealias Machine = StreamDeliveryStateMachine
    typealias Fixture = StreamDeliveryPerChannelTests

    static func position(_ sequence: UInt64) -> HistoryPosition { HistoryPosition(epoch: 1, sequence: sequence) }

    static func data(_ action: Machine.Action) -> [String] { Fixture.fields("data:", of: action) }

    @Test("multi-channel: live events held while the start was read, at or before the start the read found, are written once, and the id then stands on them")
    func heldAtOrBeforeStart() {
        var machine = Fixture.machine()
        machine.beginReplay(after: nil)
        _ = machine.liveEvent(Fixture.event("a4", "a", at: 4), backlog: 0)
        _ = machine.liveEvent(Fixture.event("a5", "a", at: 5), backlog: 0)
        // The read ran after both were published.
        machine.startTentatively(at: Self.position(5), on: "a")
        machine.startTentatively(at: Self.position(7), on: "b")
        #expect(Self.data(machine.completeReplay(backlog: 0)) == ["a4", "a5"])
        #expect(machine.channelPositions?.position(of: "a") == Self.position(5))
        // Once delivered, positions are deliveries again: repeats are dropped.
        #expect(Self.data(machine.liveEvent(Fixture.event("a5 again", "a", at: 5), backlog: 0)).isEmpty)
        #expect(Self.data(machine.liveEvent(Fixture.event("a3", "a", at: 3), backlog: 0)).isEmpty)
        // b kept its tentative start for the id, and its first event (on its way when the read ran) is written.
        #expect(machine.channelPositions?.position(of: "b") == Self.position(7))
        #expect(Self.data(machine.liveEvent(Fixture.event("b7", "b", at: 7), backlog: 0)) == ["b7"])
        #expect(Self.data(machine.liveEvent(Fixture.event("b7 again", "b", at: 7), backlog: 0)).isEmpty)
        #expect(Self.data(machine.liveEvent(Fixture.event("b8", "b", at: 8), backlog: 0)) == ["b8"])
    }

    @Test("single position: the first live event at or before a tentative start is written, the next repeat is not")
    func singleChannel() {
        var machine = Machine(isChunked: false, clientBufferBytes: 10_000)
        machine.startTentatively(at: Self.position(9), on: "a")
        #expect(machine.lastDelivered == Self.position(9))
        #expect(Self.data(machine.liveEvent(Fixture.event("a9", "a", at: 9), backlog: 0)) == ["a9"])
        #expect(Self.data(machine.liveEvent(Fixture.event("a9 again", "a", at: 9), backlog: 0)).isEmpty)
        #expect(Self.data(machine.liveEvent(Fixture.event("a10", "a", at: 10), backlog: 0)) == ["a10"])
    }

    @Test("a tentative start never lowers a position the stream has, and a replay's reset or a raise past it makes it a delivery")
    func positionsWin() {
        var machine = Fixture.machine()
        _ = machine.liveEvent(Fixture.event("a6", "a", at: 6), backlog: 0)
        machine.startTentatively(at: Self.position(9), on: "a")
        #expect(machine.channelPositions?.position(of: "a") == Self.position(6))
        #expect(Self.data(machine.liveEvent(Fixture.event("a5", "a", at: 5), backlog: 0)).isEmpty, "a real position still deduplicates")

        machine.startTentatively(at: Self.position(3), on: "b")
        machine.raisePosition(to: Self.position(4), on: "b")
        #expect(Self.data(machine.liveEvent(Fixture.event("b4", "b", at: 4), backlog: 0)).isEmpty, "raised: a delivery")

        var single = Machine(isChunked: false, clientBufferBytes: 10_000)
        single.startTentatively(at: Self.position(3), on: "a")
        single.resetPosition(to: Self.position(3))
        #expect(Self.data(single.liveEvent(Fixture.event("a3", "a", at: 3), backlog: 0)).isEmpty, "reset: a delivery")
    }

    @Test("a batch overlapping a tentative start on a single-position stream is written whole")
    func batchOverlap() {
        var machine = Machine(isChunked: false, clientBufferBytes: 10_000)
        machine.startTentatively(at: Self.position(2), on: "a")
        let batch = ChannelBatch(channel: "a", events: [Fixture.event("a1", "a", at: 1), Fixture.event("a2", "a", at: 2), Fixture.event("a3", "a", at: 3)], allocator: Fixture.allocator)
        #expect(Self.data(machine.liveBatch(batch, flushNow: true, backlog: 0)) == ["a1", "a2", "a3"])
    }

    @Test("a replayed event at or before a tentative start is dropped (the replay was planned from it); live ones after it are judged by what was written")
    func replayJudgedByStart() {
        var machine = Fixture.machine()
        machine.startTentatively(at: Self.position(5), on: "a")
        machine.beginReplay(after: nil)
        let page = machine.replayPage([Fixture.event("a4", "a", at: 4), Fixture.event("a5", "a", at: 5), Fixture.event("a6", "a", at: 6)], gap: nil, backlog: 0)
        #expect(Self.data(page) == ["a6"])
        _ = machine.completeReplay(backlog: 0)
        #expect(Self.data(machine.liveEvent(Fixture.event("a5", "a", at: 5), backlog: 0)).isEmpty)
        #expect(Self.data(machine.liveEvent(Fixture.event("a7", "a", at: 7), backlog: 0)) == ["a7"])

        var single = Machine(isChunked: false, clientBufferBytes: 10_000)
        single.startTentatively(at: Self.position(5), on: "a")
        single.beginReplay(after: nil)
        #expect(Self.data(single.replayPage([Fixture.event("a5", "a", at: 5), Fixture.event("a6", "a", at: 6)], gap: nil, backlog: 0)) == ["a6"])
    }
}
