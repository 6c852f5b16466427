#if Hummingbird
import NIOCore
import NIOPosix
import SSEStreamCore
import Synchronization

/// A stand-in for the broker's stream behind a route: it opens a ``BoundedStreamSink`` on a loop,
/// writes what the test asks, and records what the sink tells it, for the test to wait on.
final class StreamProbe: Sendable {
    enum Event: Hashable, Sendable {
        case writable(Bool)
        case closed
    }

    /// The stream's side on the loop.
    final class Owner: StreamSinkOwner {
        let sink: BoundedStreamSink
        let probe: StreamProbe
        var onWritable: (() -> Void)?

        init(sink: BoundedStreamSink, probe: StreamProbe) {
            self.sink = sink
            self.probe = probe
        }

        func sinkWritabilityChanged(isWritable: Bool) {
            probe.record(.writable(isWritable))
            if isWritable { onWritable?() }
        }

        func sinkClosed() {
            probe.record(.closed)
        }
    }

    private struct State {
        var owner: NIOLoopBound<Owner>?
        var events: [Event] = []
        var version = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let loop: any EventLoop
    let clientBufferBytes: Int
    private let state = Mutex(State())

    init(clientBufferBytes: Int = 64 * 1024, loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()) {
        self.clientBufferBytes = clientBufferBytes
        self.loop = loop
    }

    var events: [Event] { state.withLock { $0.events } }

    /// Whether a route opened the stream.
    var isOpen: Bool { state.withLock { $0.owner != nil } }

    /// Waits until a route opened the stream; false after `seconds`.
    func waitOpened(seconds: Double = 10) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while !isOpen {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    func count(of event: Event) -> Int { events.filter { $0 == event }.count }

    /// Opens the stream (from a route handler): a sink on the probe's loop with `first`
    /// already flushed; returns what the response drains.
    func open(first: [String] = [], end: Bool = false) async throws -> BoundedStreamSink.Chunks {
        try await loop.submit {
            let (sink, chunks) = BoundedStreamSink.makeSink(on: self.loop, clientBufferBytes: self.clientBufferBytes)
            let owner = Owner(sink: sink, probe: self)
            sink.owner = owner
            for text in first { sink.write(ByteBuffer(string: text)) }
            if end { sink.end(after: nil) } else { sink.flush() }
            self.state.withLock { $0.owner = NIOLoopBound(owner, eventLoop: self.loop) }
            return chunks
        }.get()
    }

    /// Runs `body` on the loop with the open stream (nothing if none was opened).
    func onLoop(_ body: @escaping @Sendable (BoundedStreamSink, Owner) -> Void) async throws {
        let owner = state.withLock { $0.owner }
        try await loop.submit {
            guard let owner else { return }
            body(owner.value.sink, owner.value)
        }.get()
    }

    func record(_ event: Event) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.events.append(event)
            state.version += 1
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until `event` was recorded; false after `seconds`.
    func wait(for event: Event, seconds: Double = 10) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            let (seen, version) = state.withLock { ($0.events.contains(event), $0.version) }
            if seen { return true }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await withCheckedContinuation { continuation in
                        let changed = self.state.withLock { state -> Bool in
                            guard state.version == version else { return true }
                            state.waiters.append(continuation)
                            return false
                        }
                        if changed { continuation.resume() }
                    }
                }
                group.addTask {
                    try? await Task.sleep(until: deadline)
                    let waiters = self.state.withLock { state in
                        state.version += 1
                        defer { state.waiters = [] }
                        return state.waiters
                    }
                    for waiter in waiters { waiter.resume() }
                }
                await group.next()
                group.cancelAll()
            }
        }
        return events.contains(event)
    }

    /// Returns after everything the loop was asked to do before it has run.
    func settle() async throws {
        try await loop.submit {}.get()
    }
}
#endif
