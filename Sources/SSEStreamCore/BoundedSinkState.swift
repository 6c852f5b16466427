import NIOCore

/// What a host's consumer gets from one take of a ``BoundedStreamSink``.
enum SinkDelivery: Hashable, Sendable {
    /// Everything flushed since the last take, in order; never empty.
    case bytes([ByteBuffer])
    /// The stream ended cleanly, or the consumer itself went away.
    case finished
    /// The stream cut its client off.
    case cutOff
}

/// The half of a ``BoundedStreamSink`` that the loop and the consumer share, as a pure value:
/// each input returns what to do (a waiter to wake, callbacks to run on the loop), and
/// ``BoundedStreamSink`` carries it out under one lock. Generic over the waiter and the
/// callback target so that it can be tested without tasks or loops.
///
/// Bytes are counted from flush until the consumer acknowledges them by coming back for more:
/// `unreadBytes` is what the client was sent and has not taken yet.
struct BoundedSinkState<Waiter, Target> {
    enum Phase: Hashable, Sendable {
        /// Taking writes.
        case open
        /// `end(after:)` was called: the consumer drains what is ready, then finishes.
        case ending
        /// The consumer drained everything after `end(after:)`.
        case finished
        /// `abort()`: dropped at once, the consumer throws.
        case cutOff
        /// The consumer went away (cancelled, dropped, or the host cancelled it).
        case cancelled
    }

    /// How a stream ends before its consumer drained it.
    enum Stop: Hashable, Sendable {
        case cutOff
        case cancelled
    }

    /// What a write does.
    enum WriteOutcome: Hashable, Sendable {
        case queued
        /// Queued, and it took the sink past its high watermark: tell the owner.
        case queuedNowUnwritable
        /// The stream is over; the bytes go nowhere.
        case dropped
    }

    /// A waiting consumer to resume, and with what.
    struct Wake {
        let waiter: Waiter
        let delivery: SinkDelivery
    }

    /// What to run on the loop, each at most once per scheduling.
    struct Callbacks {
        /// Writable again, unless the stream queued more since (checked on the loop).
        var resumeWritability = false
        /// The stream is over: tell the owner, once in the sink's life.
        var closed = false
        var target: Target?

        var isEmpty: Bool { !resumeWritability && !closed }
    }

    private(set) var phase = Phase.open
    private(set) var isWritable = true
    /// Flushed and not yet acknowledged: what is ready plus what the consumer holds.
    private(set) var unreadBytes = 0
    /// Whom the loop-side callbacks reach.
    var target: Target?

    private var ready: [ByteBuffer] = []
    private var readyBytes = 0
    private var lentBytes = 0
    private var waiter: Waiter?
    private var hasConsumer = false
    private var isResumeScheduled = false
    private var isCloseReported = false

    init() {}

    var isClosed: Bool {
        switch phase {
        case .open, .ending: false
        case .finished, .cutOff, .cancelled: true
        }
    }

    /// The loop queues a write; the sink then holds `queuedBytes` unflushed.
    mutating func queue(holding queuedBytes: Int, highWatermark: Int) -> WriteOutcome {
        guard phase == .open else { return .dropped }
        if isWritable, unreadBytes + queuedBytes > highWatermark {
            isWritable = false
            return .queuedNowUnwritable
        }
        return .queued
    }

    /// The loop flushes `buffers` (`bytes` in all); with `ending`, nothing follows them.
    mutating func deliver(_ buffers: [ByteBuffer], bytes: Int, ending: Bool) -> Wake? {
        guard phase == .open else { return nil }
        if !buffers.isEmpty {
            ready.append(contentsOf: buffers)
            readyBytes += bytes
            unreadBytes += bytes
        }
        if ending { phase = .ending }
        return wakeWaiter()
    }

    /// The first consumer claims the stream; any later one finds it over.
    mutating func claimConsumer() -> Bool {
        defer { hasConsumer = true }
        return !hasConsumer
    }

    /// The consumer comes back: what it took before has left.
    mutating func acknowledge() {
        unreadBytes -= lentBytes
        lentBytes = 0
    }

    /// What the consumer gets now, or nil if it has to wait.
    mutating func nextDelivery() -> SinkDelivery? {
        switch phase {
        case .open, .ending:
            if !ready.isEmpty {
                defer {
                    ready = []
                    lentBytes = readyBytes
                    readyBytes = 0
                }
                return .bytes(ready)
            }
            guard phase == .ending else { return nil }
            phase = .finished
            return .finished
        case .finished, .cancelled:
            return .finished
        case .cutOff:
            return .cutOff
        }
    }

    /// The consumer waits as `waiter` unless something is there already (returned).
    mutating func wait(_ waiter: Waiter) -> SinkDelivery? {
        if let delivery = nextDelivery() { return delivery }
        // One consumer at a time: a concurrent second wait is answered as over.
        guard self.waiter == nil else { return .finished }
        self.waiter = waiter
        return nil
    }

    /// The stream is over before being drained: everything held is dropped.
    mutating func stop(_ reason: Stop) -> Wake? {
        switch phase {
        case .open, .ending:
            phase = reason == .cutOff ? .cutOff : .cancelled
        case .finished, .cutOff, .cancelled:
            break
        }
        ready = []
        readyBytes = 0
        unreadBytes = 0
        lentBytes = 0
        return wakeWaiter()
    }

    /// After any input: the loop-side callbacks now due, each scheduled once.
    mutating func callbacks(lowWatermark: Int) -> Callbacks {
        var callbacks = Callbacks(target: target)
        if phase == .open, !isWritable, !isResumeScheduled, unreadBytes < lowWatermark {
            isResumeScheduled = true
            callbacks.resumeWritability = true
        }
        if isClosed, !isCloseReported {
            isCloseReported = true
            callbacks.closed = true
        }
        return callbacks
    }

    /// On the loop, a scheduled resume: writable again if, with the `queuedBytes` the stream
    /// added since, the sink is still below the low watermark.
    mutating func resumeWritability(holding queuedBytes: Int, lowWatermark: Int) -> Bool {
        isResumeScheduled = false
        guard phase == .open, !isWritable, unreadBytes + queuedBytes < lowWatermark else { return false }
        isWritable = true
        return true
    }

    private mutating func wakeWaiter() -> Wake? {
        guard let waiter, let delivery = nextDelivery() else { return nil }
        self.waiter = nil
        return Wake(waiter: waiter, delivery: delivery)
    }
}

extension BoundedSinkState.Callbacks: Sendable where Target: Sendable {}
extension BoundedSinkState.Wake: Sendable where Waiter: Sendable {}
extension BoundedSinkState.Wake: Equatable where Waiter: Equatable {}
