import NIOCore
import SSEWire
import Testing

@testable import SSEStreamCore

/// Every transition of a stream's delivery, with no I/O: inputs in, actions out.
@Suite("Stream delivery state machine")
struct StreamDeliveryStateMachineTests {
    typealias Machine = StreamDeliveryStateMachine
    static let allocator = ByteBufferAllocator()

    static func event(_ text: String, at sequence: UInt64? = nil) -> EncodedEvent {
        EncodedEvent(
            ServerSentEvent(data:text),
            position: sequence.map { HistoryPosition(epoch: 1, sequence: $0) },
            allocator: allocator
        )
    }

    static func position(_ sequence: UInt64) -> HistoryPosition { HistoryPosition(epoch: 1, sequence: sequence) }

    /// The text an action writes (raw framing), or nil for no write.
    static func written(_ action: Machine.Action) -> String? {
        switch action {
        case .write(let bytes, _), .writeAndFlush(let bytes): String(buffer: bytes)
        case .writeAll(let writes, _), .writeAllAndFlush(let writes): writes.map { String(buffer: $0) }.joined()
        case .finish(let last): last.map { String(buffer: $0) }
        case .none, .cutOff: nil
        }
    }

    // MARK: Live

    @Test("live: an event is queued; only the first write since a flush asks for one")
    func liveWrites() {
        var machine = Machine(isChunked: false, clientBufferBytes: 1000)
        guard case .write(let first, touched: true) = machine.liveEvent(Self.event("a"), backlog: 0) else {
            Issue.record("expected a touching write"); return
        }
        #expect(String(buffer: first) == "data:a\n\n")
        guard case .write(_, touched: false) = machine.liveEvent(Self.event("b"), backlog: 0) else {
            Issue.record("expected a write that needs no second flush"); return
        }
        machine.flushed()
        guard case .write(_, touched: true) = machine.liveEvent(Self.event("c"), backlog: 0) else {
            Issue.record("a write after a flush needs a flush again"); return
        }
    }

    @Test("chunked streams get the chunk framing, others the text alone")
    func framing() {
        var chunked = Machine(isChunked: true, clientBufferBytes: 1000)
        #expect(Self.written(chunked.liveEvent(Self.event("a"), backlog: 0)) == "8\r\ndata:a\n\n\r\n")
        var raw = Machine(isChunked: false, clientBufferBytes: 1000)
        #expect(Self.written(raw.liveEvent(Self.event("a"), backlog: 0)) == "data:a\n\n")
    }

    @Test("an event at or before the last position delivered is dropped; one without a position never is")
    func deduplication() {
        var machine = Machine(isChunked: false, clientBufferBytes: 1000)
        #expect(Self.written(machine.liveEvent(Self.event("5", at: 5), backlog: 0)) != nil)
        #expect(Self.written(machine.liveEvent(Self.event("5 again", at: 5), backlog: 0)) == nil)
        #expect(Self.written(machine.liveEvent(Self.event("4", at: 4), backlog: 0)) == nil)
        #expect(Self.written(machine.liveEvent(Self.event("plain"), backlog: 0)) != nil)
        #expect(Self.written(machine.liveEvent(Self.event("6", at: 6), backlog: 0)) != nil)
        #expect(machine.lastDelivered == Self.position(6))
    }

    @Test("a batch goes in one write (or one write-and-flush with flushNow) and moves the position to its newest")
    func batches() {
        let batch = ChannelBatch(channel: "c", events: [Self.event("1", at: 1), Self.event("2", at: 2)], allocator: Self.allocator)
        var machine = Machine(isChunked: false, clientBufferBytes: 1000)
        guard case .write(let bytes, touched: true) = machine.liveBatch(batch, flushNow: false, backlog: 0) else {
            Issue.record("expected one write"); return
        }
        #expect(String(buffer: bytes) == "data:1\n\ndata:2\n\n")
        #expect(machine.lastDelivered == Self.position(2))
        var direct = Machine(isChunked: false, clientBufferBytes: 1000)
        guard case .writeAndFlush = direct.liveBatch(batch, flushNow: true, backlog: 0) else {
            Issue.record("flushNow writes and flushes at once"); return
        }
        #expect(!direct.hasPendingWrites)
    }

    @Test("a batch overlapping what the client has goes event by event, without the duplicates")
    func overlappingBatch() {
        var machine = Machine(isChunked: false, clientBufferBytes: 1000)
        machine.raisePosition(to: Self.position(2))
        let batch = ChannelBatch(
            channel: "c",
            events: [Self.event("2", at: 2), Self.event("3", at: 3), Self.event("plain")],
            allocator: Self.allocator
        )
        #expect(Self.written(machine.liveBatch(batch, flushNow: false, backlog: 0)) == "data:3\n\ndata:plain\n\n")
        #expect(Self.written(machine.liveBatch(batch, flushNow: true, backlog: 0)) == "data:plain\n\n")
    }

    // MARK: Backpressure

    @Test("while writable the backlog is never read; once not, a backlog past the buffer is cut off")
    func backpressure() {
        var machine = Machine(isChunked: false, clientBufferBytes: 100)
        var reads = 0
        func backlog(_ value: Int) -> Int { reads += 1; return value }
        _ = machine.liveEvent(Self.event("a"), backlog: backlog(1_000_000))
        #expect(reads == 0)
        machine.writabilityChanged(isWritable: false)
        #expect(Self.written(machine.liveEvent(Self.event("b"), backlog: backlog(100))) != nil)
        #expect(reads == 1)
        guard case .cutOff(backlog: 101) = machine.liveEvent(Self.event("c"), backlog: backlog(101)) else {
            Issue.record("past the buffer: cut off"); return
        }
        #expect(machine.phase == .finishing)
        #expect(!machine.isOpen)
        guard case .none = machine.liveEvent(Self.event("d"), backlog: 0) else {
            Issue.record("nothing after the cut-off"); return
        }
        guard case .none = machine.finish() else { Issue.record("no finish after a cut-off"); return }
    }

    @Test("heartbeats are cut off like events when live, and written while a replay holds live events")
    func heartbeats() {
        var machine = Machine(isChunked: false, clientBufferBytes: 10)
        let beat = EncodedEvent(text: EventTextEncoder.comment(), allocator: Self.allocator)
        #expect(Self.written(machine.heartbeat(beat, backlog: 0)) == ":\n\n")
        machine.writabilityChanged(isWritable: false)
        guard case .cutOff = machine.heartbeat(beat, backlog: 11) else { Issue.record("expected a cut-off"); return }
    }

    @Test("during a replay, a heartbeat past the buffer cuts off only a client that took nothing since the previous one")
    func heartbeatsDuringReplay() {
        var machine = Machine(isChunked: false, clientBufferBytes: 10)
        let beat = EncodedEvent(text: EventTextEncoder.comment(), allocator: Self.allocator)
        machine.beginReplay(after: nil)
        #expect(Self.written(machine.heartbeat(beat, backlog: 0)) == ":\n\n")
        machine.writabilityChanged(isWritable: false)
        // A page in flight, being read: no cut-off, no heartbeat on top.
        guard case .none = machine.heartbeat(beat, backlog: 500) else { Issue.record("a page in flight: nothing"); return }
        guard case .none = machine.heartbeat(beat, backlog: 300) else { Issue.record("it shrank: nothing"); return }
        // It stopped shrinking: cut off.
        guard case .cutOff(backlog: 300) = machine.heartbeat(beat, backlog: 300) else { Issue.record("expected a cut-off"); return }
    }

    // MARK: Replay

    @Test("replaying: live events are held and released after the replay, deduplicated against it")
    func replayHoldsLive() {
        var machine = Machine(isChunked: false, clientBufferBytes: 1000)
        machine.beginReplay(after: Self.position(1))
        #expect(machine.phase == .replaying(pending: 1))
        #expect(Self.written(machine.liveEvent(Self.event("3", at: 3), backlog: 0)) == nil)
        #expect(Self.written(machine.liveEvent(Self.event("4", at: 4), backlog: 0)) == nil)
        #expect(machine.heldByteCount > 0)
        let page = machine.replayPage([Self.event("1", at: 1), Self.event("2", at: 2), Self.event("3", at: 3)], gap: nil, backlog: 0)
        #expect(Self.written(page) == "data:2\n\ndata:3\n\n")
        #expect(Self.written(machine.completeReplay(backlog: 0)) == "data:4\n\n")
        #expect(machine.phase == .live)
        #expect(machine.heldByteCount == 0)
        #expect(machine.lastDelivered == Self.position(4))
    }

    @Test("the gap notice comes first in its page")
    func gapFirst() {
        var machine = Machine(isChunked: false, clientBufferBytes: 1000)
        machine.beginReplay(after: nil)
        let gap = EncodedEvent(ServerSentEvent(data:"{}", type: "history-gap"), position: nil, allocator: Self.allocator)
        #expect(Self.written(machine.replayPage([Self.event("1", at: 1)], gap: gap, backlog: 0)) == "event:history-gap\ndata:{}\n\ndata:1\n\n")
    }

    @Test("two replays: held events wait for both; a page outside a replay is ignored")
    func nestedReplays() {
        var machine = Machine(isChunked: false, clientBufferBytes: 1000)
        guard case .none = machine.replayPage([Self.event("x", at: 9)], gap: nil, backlog: 0) else {
            Issue.record("no page outside a replay"); return
        }
        machine.beginReplay(after: nil)
        machine.beginReplay(after: nil)
        _ = machine.liveEvent(Self.event("live"), backlog: 0)
        #expect(Self.written(machine.completeReplay(backlog: 0)) == "")
        #expect(machine.phase == .replaying(pending: 1))
        #expect(Self.written(machine.completeReplay(backlog: 0)) == "data:live\n\n")
        guard case .none = machine.completeReplay(backlog: 0) else { Issue.record("nothing to complete"); return }
    }

    @Test("held events past the buffer cut the client off; held bytes are dropped")
    func heldBeyondBudget() {
        let small = Self.event("0123456789")
        var machine = Machine(isChunked: false, clientBufferBytes: small.chunked.readableBytes * 2)
        machine.beginReplay(after: nil)
        guard case .none = machine.liveEvent(small, backlog: 0), case .none = machine.liveEvent(small, backlog: 0) else {
            Issue.record("within the buffer: held"); return
        }
        guard case .cutOff = machine.liveEvent(small, backlog: 0) else { Issue.record("past the buffer: cut off"); return }
        #expect(machine.heldByteCount == 0)
    }

    @Test("a replay page that meets a full client cuts it off; a stalled replay too")
    func replayBackpressure() {
        var machine = Machine(isChunked: false, clientBufferBytes: 10)
        machine.beginReplay(after: nil)
        machine.writabilityChanged(isWritable: false)
        #expect(!machine.canTakeReplayPage)
        guard case .cutOff = machine.replayPage([Self.event("a", at: 1)], gap: nil, backlog: 50) else {
            Issue.record("expected a cut-off"); return
        }
        #expect(machine.canTakeReplayPage, "a closed client never holds a replay back")
        var stalled = Machine(isChunked: false, clientBufferBytes: 10)
        stalled.beginReplay(after: nil)
        guard case .cutOff(backlog: 7) = stalled.replayStalled(backlog: 7) else { Issue.record("expected a cut-off"); return }
    }

    @Test("resetPosition sets the position exactly, raisePosition only moves it forward")
    func positions() {
        var machine = Machine(isChunked: false, clientBufferBytes: 10)
        machine.raisePosition(to: Self.position(5))
        machine.raisePosition(to: Self.position(3))
        #expect(machine.lastDelivered == Self.position(5))
        machine.resetPosition(to: Self.position(2))
        #expect(machine.lastDelivered == Self.position(2))
        machine.resetPosition(to: nil)
        #expect(machine.lastDelivered == nil)
    }

    // MARK: Ending

    @Test("finish: the last word and the terminating chunk, once; nothing after it")
    func finishing() {
        var machine = Machine(isChunked: true, clientBufferBytes: 1000)
        machine.beginReplay(after: nil)
        _ = machine.liveEvent(Self.event("held"), backlog: 0)
        #expect(machine.heldByteCount > 0)
        let notice = EncodedEvent(ServerSentEvent(data:"bye", type: "x"), position: nil, allocator: Self.allocator)
        #expect(Self.written(machine.finish(after: notice)) == "12\r\nevent:x\ndata:bye\n\n\r\n0\r\n\r\n")
        #expect(machine.phase == .finishing)
        #expect(machine.heldByteCount == 0)
        guard case .none = machine.finish() else { Issue.record("finishes once"); return }
        guard case .none = machine.liveEvent(Self.event("late"), backlog: 0) else { Issue.record("nothing after finish"); return }
        var plain = Machine(isChunked: false, clientBufferBytes: 10)
        guard case .finish(last: nil) = plain.finish() else { Issue.record("no terminator without chunking"); return }
    }

    @Test("closed: nothing is written, replays end")
    func closed() {
        var machine = Machine(isChunked: false, clientBufferBytes: 10)
        machine.beginReplay(after: nil)
        machine.closed()
        #expect(machine.phase == .closed)
        #expect(!machine.isOpen)
        guard case .none = machine.liveEvent(Self.event("a"), backlog: 0),
            case .none = machine.completeReplay(backlog: 0),
            case .none = machine.finish()
        else { Issue.record("a closed stream does nothing"); return }
    }
}
