import NIOCore
import NIOPosix
import SSEStreamCore
import Synchronization

/// What a sink told its owner, in order.
enum SinkEvent: Hashable, Sendable {
    case writable(Bool)
    case closed
}

/// Collects a sink's callbacks for the test task, which waits for them without polling.
final class SinkEventLog: Sendable {
    private struct Waiter {
        let id: Int
        let event: SinkEvent
        let continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var events: [SinkEvent] = []
        var waiters: [Waiter] = []
        var nextID = 0
        var timedOut: Set<Int> = []
    }

    private let state = Mutex(State())

    var events: [SinkEvent] { state.withLock { $0.events } }

    func count(of event: SinkEvent) -> Int { events.filter { $0 == event }.count }

    func record(_ event: SinkEvent) {
        let due = state.withLock { state -> [Waiter] in
            state.events.append(event)
            let due = state.waiters.filter { $0.event == event }
            state.waiters.removeAll { $0.event == event }
            return due
        }
        for waiter in due { waiter.continuation.resume() }
    }

    /// Returns true once `event` has been recorded (at once if it was), false after `seconds`.
    func wait(for event: SinkEvent, seconds: Double = 10) async -> Bool {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let now = self.state.withLock { state -> Bool in
                        if state.events.contains(event) || state.timedOut.contains(id) { return true }
                        state.waiters.append(Waiter(id: id, event: event, continuation: continuation))
                        return false
                    }
                    if now { continuation.resume() }
                }
                return self.state.withLock { $0.events.contains(event) }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(seconds))
                let left = self.state.withLock { state -> Waiter? in
                    state.timedOut.insert(id)
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.waiters.remove(at: index)
                }
                left?.continuation.resume()
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}

/// A stream's side of a sink, living on the sink's loop: it owns the sink and logs what the
/// sink tells it. `onWritable` lets a test producer continue when the sink drains.
final class SinkOwner: StreamSinkOwner {
    let sink: BoundedStreamSink
    let log: SinkEventLog
    var onWritable: (() -> Void)?
    var onClosed: (() -> Void)?

    init(sink: BoundedStreamSink, log: SinkEventLog) {
        self.sink = sink
        self.log = log
    }

    func sinkWritabilityChanged(isWritable: Bool) {
        log.record(.writable(isWritable))
        if isWritable { onWritable?() }
    }

    func sinkClosed() {
        log.record(.closed)
        onClosed?()
    }
}

/// A sink made on a real event loop, with the handles a test needs from other tasks.
struct SinkHarness: Sendable {
    let loop: any EventLoop
    let owner: NIOLoopBound<SinkOwner>
    let chunks: BoundedStreamSink.Chunks
    let log: SinkEventLog

    static func make(low: Int = 50, high: Int = 100, on loop: (any EventLoop)? = nil) async throws -> SinkHarness {
        let loop = loop ?? MultiThreadedEventLoopGroup.singleton.next()
        let log = SinkEventLog()
        return try await loop.submit {
            let (sink, chunks) = BoundedStreamSink.makeSink(on: loop, lowWatermark: low, highWatermark: high)
            let owner = SinkOwner(sink: sink, log: log)
            sink.owner = owner
            return SinkHarness(loop: loop, owner: NIOLoopBound(owner, eventLoop: loop), chunks: chunks, log: log)
        }.get()
    }

    /// Runs `body` with the sink on its loop.
    @discardableResult
    func onLoop<T: Sendable>(_ body: @escaping @Sendable (BoundedStreamSink, SinkOwner) -> T) async throws -> T {
        try await loop.submit { body(owner.value.sink, owner.value) }.get()
    }

    /// Returns after everything the loop was asked to do before it has run (callbacks included).
    func settle() async throws {
        try await loop.submit {}.get()
    }
}

extension ByteBuffer {
    init(repeating byte: UInt8, count: Int) {
        self.init(bytes: [UInt8](repeating: byte, count: count))
    }
}

/// Runs `body`, failing with `TimedOut` after `seconds`, so that no test can hang.
func withTimeout<T: Sendable>(
    seconds: Double = 20,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw TimedOut()
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw TimedOut() }
        return first
    }
}

struct TimedOut: Error {}
