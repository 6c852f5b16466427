import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A POSIX thread the broker owns, for blocking calls (hiredis, `accept`, `poll`), and a way to
/// wait for it to end without spinning.
///
/// Blocking calls must never run on an event loop or Swift's cooperative pool, so each one
/// gets a thread of its own. Whoever stops such a thread (sets its stop flag, wakes it) then
/// waits for it with ``join()``: blocking from a thread of its own, or `await join()` from a
/// task, which suspends instead of holding a cooperative thread. The thread is detached: it
/// signals its end as the last thing it does and the system reclaims it right after, so no
/// `pthread_join` is owed and dropping an `OwnedThread` leaks nothing.
package final class OwnedThread: Sendable {
    private final class Body {
        let run: () -> Void
        init(run: @escaping () -> Void) {
            self.run = run
        }
    }

    private enum Waiter {
        case blocking(DispatchSemaphore)
        case task(CheckedContinuation<Void, Never>)

        func resume() {
            switch self {
            case .blocking(let semaphore): semaphore.signal()
            case .task(let continuation): continuation.resume()
            }
        }
    }

    private struct State {
        var ended = false
        var waiters: [Waiter] = []
    }

    private let state = Mutex(State())

    private init() {}

    /// Runs `body` on a new thread; nil if the system refused to create one (nothing runs then).
    package static func spawn(_ body: @escaping @Sendable () -> Void) -> OwnedThread? {
        let owned = OwnedThread()
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Body {
            body()
            owned.markEnded()
        })
        let result = pthread_create(&thread, nil, { raw in
            #if canImport(Darwin)
            let body = Unmanaged<Body>.fromOpaque(raw).takeRetainedValue()
            #else
            guard let raw else { return nil }
            let body = Unmanaged<Body>.fromOpaque(raw).takeRetainedValue()
            #endif
            body.run()
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            return nil
        }
        pthread_detach(thread)
        return owned
    }

    /// Whether the thread's body has returned.
    package var hasEnded: Bool { state.withLock { $0.ended } }

    /// Blocks the calling thread until the body has returned (at once if it has).
    ///
    /// Only from a thread that may block (one of ours, or a test's); from a task use the
    /// `async` overload, which Swift picks there. Never from the thread itself: it would wait
    /// for its own end.
    package func join() {
        let semaphore = DispatchSemaphore(value: 0)
        let ended = state.withLock { state in
            if !state.ended { state.waiters.append(.blocking(semaphore)) }
            return state.ended
        }
        if !ended { semaphore.wait() }
    }

    /// Suspends until the body has returned (at once if it has), holding no thread meanwhile.
    /// Cancelling the waiting task does not end the wait: the thread's owner has asked it to stop,
    /// and the wait ends when it has.
    package func join() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ended = state.withLock { state in
                if !state.ended { state.waiters.append(.task(continuation)) }
                return state.ended
            }
            if ended { continuation.resume() }
        }
    }

    private func markEnded() {
        let waiters = state.withLock { state in
            state.ended = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
