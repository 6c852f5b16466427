import NIOCore
import Testing

@testable import SSEStreamCore

/// Every transition of the shared sink state, without tasks or loops: waiters and callback
/// targets are plain numbers.
@Suite("Bounded sink state")
struct BoundedSinkStateTests {
    typealias State = BoundedSinkState<Int, Int>

    static func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    static func texts(_ delivery: SinkDelivery?) -> [String]? {
        guard case .bytes(let buffers) = delivery else { return nil }
        return buffers.map { String(buffer: $0) }
    }

    static func isFinished(_ delivery: SinkDelivery?) -> Bool {
        if case .finished = delivery { return true }
        return false
    }

    static func isCutOff(_ delivery: SinkDelivery?) -> Bool {
        if case .cutOff = delivery { return true }
        return false
    }

    @Test("flushed buffers reach the consumer in order, all that are ready in one delivery")
    func ordering() {
        var state = State()
        let r1 = state.nextDelivery()
        #expect(r1 == nil)
        let r2 = state.deliver([Self.bytes("a"), Self.bytes("bc")], bytes: 3, ending: false)
        #expect(r2 == nil)
        let r3 = state.deliver([Self.bytes("d")], bytes: 1, ending: false)
        #expect(r3 == nil)
        #expect(state.unreadBytes == 4)
        let r4 = state.nextDelivery()
        #expect(Self.texts(r4) == ["a", "bc", "d"])
        let r5 = state.nextDelivery()
        #expect(r5 == nil)
        // Taken, not yet written out: still unread until the consumer comes back.
        #expect(state.unreadBytes == 4)
        state.acknowledge()
        #expect(state.unreadBytes == 0)
    }

    @Test("a waiting consumer is woken by the next flush with what it flushed")
    func wakesWaiter() throws {
        var state = State()
        let r6 = state.wait(7)
        #expect(r6 == nil)
        let r7 = state.deliver([Self.bytes("x")], bytes: 1, ending: false)
        let wake = try #require(r7)
        #expect(wake.waiter == 7)
        #expect(Self.texts(wake.delivery) == ["x"])
        let r8 = state.deliver([Self.bytes("y")], bytes: 1, ending: false)
        #expect(r8 == nil)
    }

    @Test("past the high watermark once: not writable, reported once; writable again below low after acknowledgement")
    func watermarks() {
        var state = State()
        let r9 = state.queue(holding: 60, highWatermark: 100)
        #expect(r9 == .queued)
        let r10 = state.queue(holding: 100, highWatermark: 100)
        #expect(r10 == .queued)
        let r11 = state.queue(holding: 101, highWatermark: 100)
        #expect(r11 == .queuedNowUnwritable)
        #expect(!state.isWritable)
        let r12 = state.queue(holding: 150, highWatermark: 100)
        #expect(r12 == .queued)
        _ = state.deliver([Self.bytes(String(repeating: "z", count: 150))], bytes: 150, ending: false)
        let r13 = state.callbacks(lowWatermark: 50)
        #expect(r13.isEmpty)
        _ = state.nextDelivery()
        // Taken but not acknowledged: nothing yet.
        let r14 = state.callbacks(lowWatermark: 50)
        #expect(r14.isEmpty)
        state.acknowledge()
        let callbacks = state.callbacks(lowWatermark: 50)
        #expect(callbacks.resumeWritability)
        #expect(!callbacks.closed)
        // Scheduled once, not again before it ran.
        let r15 = state.callbacks(lowWatermark: 50)
        #expect(r15.isEmpty)
        let r16 = state.resumeWritability(holding: 0, lowWatermark: 50)
        #expect(r16)
        #expect(state.isWritable)
        let r17 = state.queue(holding: 100, highWatermark: 100)
        #expect(r17 == .queued)
    }

    @Test("a resume that finds the stream has queued past low again stays not writable, and is scheduled again later")
    func staleResume() {
        var state = State()
        let r18 = state.queue(holding: 120, highWatermark: 100)
        #expect(r18 == .queuedNowUnwritable)
        _ = state.deliver([Self.bytes(String(repeating: "z", count: 120))], bytes: 120, ending: false)
        _ = state.nextDelivery()
        state.acknowledge()
        let r19 = state.callbacks(lowWatermark: 50)
        #expect(r19.resumeWritability)
        let r20 = state.resumeWritability(holding: 80, lowWatermark: 50)
        #expect(!r20)
        #expect(!state.isWritable)
        _ = state.deliver([Self.bytes(String(repeating: "z", count: 80))], bytes: 80, ending: false)
        _ = state.nextDelivery()
        state.acknowledge()
        let r21 = state.callbacks(lowWatermark: 50)
        #expect(r21.resumeWritability)
        let r22 = state.resumeWritability(holding: 0, lowWatermark: 50)
        #expect(r22)
    }

    @Test("end: the consumer drains what is ready, then finishes; closed reported once; writes after it go nowhere")
    func endDrains() {
        var state = State()
        _ = state.deliver([Self.bytes("a")], bytes: 1, ending: false)
        _ = state.deliver([Self.bytes("last")], bytes: 4, ending: true)
        #expect(state.phase == .ending)
        let r23 = state.queue(holding: 1, highWatermark: 100)
        #expect(r23 == .dropped)
        let r24 = state.callbacks(lowWatermark: 50)
        #expect(r24.isEmpty)
        let r25 = state.nextDelivery()
        #expect(Self.texts(r25) == ["a", "last"])
        state.acknowledge()
        let r26 = state.nextDelivery()
        #expect(Self.isFinished(r26))
        #expect(state.isClosed)
        let r27 = state.callbacks(lowWatermark: 50)
        #expect(r27.closed)
        let r28 = state.callbacks(lowWatermark: 50)
        #expect(r28.isEmpty)
        let r29 = state.nextDelivery()
        #expect(Self.isFinished(r29))
    }

    @Test("end with the consumer waiting and nothing ready finishes it at once")
    func endWakesWaiter() throws {
        var state = State()
        let r30 = state.wait(1)
        #expect(r30 == nil)
        let r31 = state.deliver([], bytes: 0, ending: true)
        let wake = try #require(r31)
        #expect(Self.isFinished(wake.delivery))
        let r32 = state.callbacks(lowWatermark: 50)
        #expect(r32.closed)
    }

    @Test("cut off: everything held is dropped, the waiting consumer is told, closed once")
    func cutOff() throws {
        var state = State()
        _ = state.deliver([Self.bytes("held")], bytes: 4, ending: false)
        _ = state.nextDelivery()
        let r33 = state.wait(3)
        #expect(r33 == nil)
        let r34 = state.stop(.cutOff)
        let wake = try #require(r34)
        #expect(wake.waiter == 3)
        #expect(Self.isCutOff(wake.delivery))
        #expect(state.unreadBytes == 0)
        let r35 = state.callbacks(lowWatermark: 50)
        #expect(r35.closed)
        // A later cancel (the iterator being dropped) changes nothing.
        let r36 = state.stop(.cancelled)
        #expect(r36 == nil)
        #expect(state.phase == .cutOff)
        let r37 = state.callbacks(lowWatermark: 50)
        #expect(r37.isEmpty)
        let r38 = state.nextDelivery()
        #expect(Self.isCutOff(r38))
    }

    @Test("cancelled while ending: the rest is dropped, the consumer finishes")
    func cancelWhileEnding() {
        var state = State()
        _ = state.deliver([Self.bytes("never read")], bytes: 10, ending: true)
        let r39 = state.stop(.cancelled)
        #expect(r39 == nil)
        #expect(state.phase == .cancelled)
        let r40 = state.nextDelivery()
        #expect(Self.isFinished(r40))
        let r41 = state.callbacks(lowWatermark: 50)
        #expect(r41.closed)
    }

    @Test("one consumer: a second claim and a concurrent second wait find the stream over")
    func singleConsumer() {
        var state = State()
        let r42 = state.claimConsumer()
        #expect(r42)
        let r43 = state.claimConsumer()
        #expect(!r43)
        let r44 = state.wait(1)
        #expect(r44 == nil)
        let r45 = state.wait(2)
        #expect(Self.isFinished(r45))
    }

    @Test("no resume is scheduled once the stream is over")
    func noResumeAfterClose() {
        var state = State()
        let r46 = state.queue(holding: 200, highWatermark: 100)
        #expect(r46 == .queuedNowUnwritable)
        _ = state.stop(.cancelled)
        let callbacks = state.callbacks(lowWatermark: 50)
        #expect(!callbacks.resumeWritability)
        #expect(callbacks.closed)
        let r47 = state.resumeWritability(holding: 0, lowWatermark: 50)
        #expect(!r47)
    }
}
