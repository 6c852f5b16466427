import NIOCore
import Synchronization

/// A stream sink that a host framework drains: bytes the stream flushes wait in a bounded buffer
/// until the host's response writer takes them through its ``Chunks``.
///
/// The stream side (``StreamSink``) runs on one event loop; the consumer (a host's response task)
/// runs anywhere. Backpressure follows NIO's channel writability: the sink reports itself not
/// writable once what it holds (queued or flushed, not yet taken) passes the high watermark, the
/// stream's client buffer, and writable again once the consumer has taken it below the low one.
/// The sink never drops or refuses bytes on its own: a stream that has to write while the sink
/// is not writable is past its budget and cuts the client off with ``abort()``, as the
/// standalone server cuts off a slow socket. So the buffer holds at most the high watermark, plus
/// one write, plus what the owner lets pile up before it cuts off.
///
/// Bytes count as taken when the consumer comes back for more after writing the previous batch
/// out, so a host writer that applies backpressure (Hummingbird's waits while its channel is not
/// writable) holds the stream back as a slow socket would.
///
/// The owner hears ``StreamSinkOwner/sinkClosed()`` exactly once, on the loop, whichever way the
/// stream ends: the consumer drained it after ``end(after:)``, the stream was cut off with
/// ``abort()``, or the consumer went away (its task was cancelled, it dropped its iterator or
/// every copy of the ``Chunks``, or the host called ``Chunks/cancel()`` because the request ended
/// or a write failed).
public final class BoundedStreamSink: StreamSink {
    /// The loop the stream side runs on.
    public let eventLoop: any EventLoop
    /// The stream this sink carries, told of writability and closing on ``eventLoop``.
    public weak var owner: (any StreamSinkOwner)?

    private let core: Core
    /// Written but not yet flushed: only the loop touches it, so it stays out of the lock.
    private var queued: [ByteBuffer] = []
    private var queuedBytes = 0

    private init(eventLoop: any EventLoop, core: Core) {
        self.eventLoop = eventLoop
        self.core = core
    }

    /// A sink on `eventLoop` and the chunks a host drains from it. Call it on `eventLoop`.
    ///
    /// It reports not writable above `highWatermark` bytes and writable again below
    /// `lowWatermark` (clamped to 1...`highWatermark`).
    public static func makeSink(
        on eventLoop: any EventLoop,
        lowWatermark: Int,
        highWatermark: Int
    ) -> (sink: BoundedStreamSink, chunks: Chunks) {
        let high = max(1, highWatermark)
        let watermarks = Watermarks(low: min(max(1, lowWatermark), high), high: high)
        let core = Core(eventLoop: eventLoop, watermarks: watermarks)
        let sink = BoundedStreamSink(eventLoop: eventLoop, core: core)
        let reference = NIOLoopBound(WeakSink(sink: sink), eventLoop: eventLoop)
        core.state.withLock { $0.target = reference }
        return (sink, Chunks(core: core))
    }

    /// A sink whose high watermark is `clientBufferBytes` and low one half of it, as the
    /// standalone server sets its sockets' write buffer. Call it on `eventLoop`.
    public static func makeSink(
        on eventLoop: any EventLoop,
        clientBufferBytes: Int
    ) -> (sink: BoundedStreamSink, chunks: Chunks) {
        let high = max(1, clientBufferBytes)
        return makeSink(on: eventLoop, lowWatermark: max(1, high / 2), highWatermark: high)
    }

    /// Whether the stream may write without passing the high watermark.
    public var isWritable: Bool {
        eventLoop.assertInEventLoop()
        return core.state.withLock { $0.isWritable }
    }

    /// Whether the stream is over (ended, cut off, or its consumer went away): writes are dropped.
    public var isClosed: Bool {
        eventLoop.assertInEventLoop()
        return core.state.withLock { $0.isClosed }
    }

    public func write(_ bytes: ByteBuffer) {
        eventLoop.assertInEventLoop()
        let count = bytes.readableBytes
        guard count > 0 else { return }
        let outcome = core.state.withLock {
            $0.queue(holding: queuedBytes + count, highWatermark: core.watermarks.high)
        }
        switch outcome {
        case .dropped:
            return
        case .queued:
            queued.append(bytes)
            queuedBytes += count
        case .queuedNowUnwritable:
            queued.append(bytes)
            queuedBytes += count
            owner?.sinkWritabilityChanged(isWritable: false)
        }
    }

    public func flush() {
        eventLoop.assertInEventLoop()
        guard !queued.isEmpty else { return }
        core.deliver(takeQueued(), ending: false)
    }

    public func writeAndFlush(_ bytes: ByteBuffer) {
        write(bytes)
        flush()
    }

    public var unreadBytes: Int {
        eventLoop.assertInEventLoop()
        return core.state.withLock { $0.unreadBytes }
    }

    public func end(after last: ByteBuffer?) {
        eventLoop.assertInEventLoop()
        if let last, last.readableBytes > 0 {
            queued.append(last)
            queuedBytes += last.readableBytes
        }
        core.deliver(takeQueued(), ending: true)
    }

    public func abort() {
        eventLoop.assertInEventLoop()
        queued.removeAll()
        queuedBytes = 0
        core.stop(.cutOff)
    }

    private func takeQueued() -> Batch {
        defer {
            queued = []
            queuedBytes = 0
        }
        return Batch(buffers: queued, bytes: queuedBytes)
    }

    /// On the loop, after the consumer took enough: writable again if the sink is still below
    /// the low watermark with what the stream queued since.
    fileprivate func consumerDrained() {
        let becameWritable = core.state.withLock {
            $0.resumeWritability(holding: queuedBytes, lowWatermark: core.watermarks.low)
        }
        if becameWritable { owner?.sinkWritabilityChanged(isWritable: true) }
    }

    fileprivate func streamClosed() {
        queued.removeAll()
        queuedBytes = 0
        owner?.sinkClosed()
    }
}

@available(*, unavailable)
extension BoundedStreamSink: Sendable {}

extension BoundedStreamSink {
    /// The sink's bytes as the host takes them: one consumer, buffers in the order flushed.
    ///
    /// Ends (nil) after ``BoundedStreamSink/end(after:)`` once everything is drained, or at once
    /// when cancelled; throws ``CutOffError`` when the stream cut the client off, so the host
    /// closes the connection instead of ending the response cleanly. Dropping every copy of it,
    /// or its iterator, counts as going away. A second iterator finds the stream over.
    public struct Chunks: AsyncSequence, Sendable {
        public typealias Element = ByteBuffer

        fileprivate let token: ConsumerToken

        fileprivate init(core: Core) {
            self.token = ConsumerToken(core: core)
        }

        public func makeAsyncIterator() -> AsyncIterator {
            let core = token.core
            return AsyncIterator(token: core.claimConsumer() ? ConsumerToken(core: core) : nil)
        }

        /// Ends the stream from the host's side (the request ended, a write failed): a waiting
        /// `next()` returns nil and the owner hears `sinkClosed()` once. Any thread.
        public func cancel() {
            token.core.stop(.cancelled)
        }

        /// Takes the next bytes: one buffer at a time (``next()``) or all that are ready
        /// (``nextBatch()``), which a host can write out in one go.
        public struct AsyncIterator: AsyncIteratorProtocol {
            /// Nil for a second iterator, which finds the stream over.
            fileprivate let token: ConsumerToken?
            private var batch: [ByteBuffer] = []
            private var index = 0

            fileprivate init(token: ConsumerToken?) {
                self.token = token
            }

            public mutating func next() async throws -> ByteBuffer? {
                if index < batch.count {
                    defer { index += 1 }
                    return batch[index]
                }
                guard let more = try await nextBatch(), let first = more.first else { return nil }
                batch = more
                index = 1
                return first
            }

            /// Everything flushed and not yet taken, in order and never empty, or nil at the
            /// end. Calling it again says the previous batch was written out.
            public mutating func nextBatch() async throws -> [ByteBuffer]? {
                batch = []
                index = 0
                guard let core = token?.core else { return nil }
                let delivery = await withTaskCancellationHandler {
                    await core.take()
                } onCancel: {
                    core.stop(.cancelled)
                }
                switch delivery {
                case .bytes(let buffers): return buffers
                case .finished: return nil
                case .cutOff: throw CutOffError()
                }
            }
        }
    }

    /// The stream cut its client off (too slow, or stopped at once): the host should close the
    /// connection rather than end the response cleanly.
    public struct CutOffError: Error, Hashable, Sendable {
        public init() {}
    }
}

/// Low and high byte watermarks, `1 <= low <= high`.
struct Watermarks: Sendable {
    let low: Int
    let high: Int
}

/// Buffers moving from the loop to the consumer, with their byte count.
private struct Batch {
    var buffers: [ByteBuffer]
    var bytes: Int
}

/// The sink, reachable from the consumer's side only through the loop.
struct WeakSink {
    weak var sink: BoundedStreamSink?
}

/// Dropped with the last copy of what holds it: the consumer went away.
private final class ConsumerToken: Sendable {
    let core: Core

    init(core: Core) {
        self.core = core
    }

    deinit {
        core.stop(.cancelled)
    }
}

/// What the loop and the consumer share, behind one lock. The transitions are
/// ``BoundedSinkState``'s; this carries out what they return.
private final class Core: Sendable {
    typealias State = BoundedSinkState<CheckedContinuation<SinkDelivery, Never>, NIOLoopBound<WeakSink>>

    let eventLoop: any EventLoop
    let watermarks: Watermarks
    let state: Mutex<State>

    init(eventLoop: any EventLoop, watermarks: Watermarks) {
        self.eventLoop = eventLoop
        self.watermarks = watermarks
        self.state = Mutex(State())
    }

    /// On the loop: makes `batch` visible and wakes a waiting consumer; with `ending`, the
    /// consumer drains what is left and then finishes.
    func deliver(_ batch: Batch, ending: Bool) {
        let (wake, callbacks) = state.withLock { state in
            let wake = state.deliver(batch.buffers, bytes: batch.bytes, ending: ending)
            return (wake, state.callbacks(lowWatermark: watermarks.low))
        }
        if let wake { wake.waiter.resume(returning: wake.delivery) }
        run(callbacks)
    }

    /// The first iterator takes the stream; later ones find it over.
    func claimConsumer() -> Bool {
        state.withLock { $0.claimConsumer() }
    }

    /// The consumer: acknowledges the previous batch, then waits for the next delivery.
    func take() async -> SinkDelivery {
        let (ready, callbacks) = state.withLock { state in
            state.acknowledge()
            return (state.nextDelivery(), state.callbacks(lowWatermark: watermarks.low))
        }
        run(callbacks)
        if let ready { return ready }
        return await withCheckedContinuation { continuation in
            let (now, callbacks) = state.withLock { state in
                (state.wait(continuation), state.callbacks(lowWatermark: watermarks.low))
            }
            if let now { continuation.resume(returning: now) }
            run(callbacks)
        }
    }

    /// Any thread: the stream is over before being drained; buffers are dropped and a waiting
    /// consumer is woken.
    func stop(_ reason: State.Stop) {
        let (wake, callbacks) = state.withLock { state in
            (state.stop(reason), state.callbacks(lowWatermark: watermarks.low))
        }
        if let wake { wake.waiter.resume(returning: wake.delivery) }
        run(callbacks)
    }

    /// Runs the owner's callbacks on the loop, never inline: the consumer is on another thread,
    /// and `abort()` should not call back into the stream that called it.
    private func run(_ callbacks: State.Callbacks) {
        guard !callbacks.isEmpty, let target = callbacks.target else { return }
        eventLoop.execute {
            let sink = target.value.sink
            if callbacks.resumeWritability { sink?.consumerDrained() }
            if callbacks.closed { sink?.streamClosed() }
        }
    }
}
