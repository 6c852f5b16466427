/// The life of one ``BrokerServer`` as a pure value: which `start()` and `shutdown()` calls may
/// proceed, and what the server must do next. No I/O; ``BrokerServer`` holds it in one `Mutex`
/// and carries the actions out.
///
/// A node starts once and shuts down once: `idle → starting → running → draining → stopped`.
/// A failed start goes on to `draining` too, so whatever the node had made (event loops,
/// threads) is released on every failure path. Shutdown may be asked for in any state and by
/// any number of callers; each becomes a waiter of the one drain, and one asked for while a
/// start is under way begins when that start has settled, so the drain never races the start.
///
/// `Resources` is what a running node must release (its listener); `Waiter` is whatever a
/// caller of `shutdown()` waits on (a continuation). Both are opaque here, so the transitions
/// are tested with plain values.
struct BrokerServerStateMachine<Resources, Waiter> {
    private enum State {
        case idle
        /// `start()` is under way; callers of `shutdown()` meanwhile wait here.
        case starting(shutdownWaiters: [Waiter])
        case running(Resources)
        /// The one drain is under way. Keeps what it is releasing so `resources` still answers.
        case draining(Resources?, waiters: [Waiter])
        case stopped(Resources?)
    }

    /// Why a `start()` may not proceed.
    enum StartRefusal: Equatable, Sendable {
        case alreadyStarted
        case shuttingDown
    }

    /// What a `shutdown()` caller must do.
    enum ShutdownAction {
        /// Run the drain (releasing `Resources`, if the node got that far), then report
        /// ``drainFinished()`` and resume every waiter it returns: this one included.
        case drain(Resources?)
        /// Another caller runs the drain (or a start is settling first): the waiter is resumed
        /// when it has finished.
        case wait
        /// The node is already stopped: resume the waiter now.
        case resume(Waiter)
    }

    /// What a settled `start()` must do next.
    enum StartedAction {
        /// Nothing: the node runs.
        case none
        /// Someone asked for a shutdown meanwhile, or the start failed: run the drain now,
        /// then report ``drainFinished()`` and resume the waiters it returns.
        case drain(Resources?)
    }

    private var state = State.idle

    init() {}

    /// What the node holds, while it runs and after (its listener keeps its port).
    var resources: Resources? {
        switch state {
        case .idle, .starting: nil
        case .running(let resources): resources
        case .draining(let resources, _), .stopped(let resources): resources
        }
    }

    /// Whether the node has stopped (the drain has finished).
    var isStopped: Bool {
        if case .stopped = state { return true }
        return false
    }

    /// A caller wants to start the node: nil if it may (the node is `starting` from now on).
    mutating func startRequested() -> StartRefusal? {
        switch state {
        case .idle:
            state = .starting(shutdownWaiters: [])
            return nil
        case .starting(let waiters):
            return waiters.isEmpty ? .alreadyStarted : .shuttingDown
        case .running:
            return .alreadyStarted
        case .draining, .stopped:
            return .shuttingDown
        }
    }

    /// The start succeeded and the node holds `resources`.
    mutating func startSucceeded(_ resources: Resources) -> StartedAction {
        guard case .starting(let waiters) = state else {
            preconditionFailure("a start settled in \(state), not while starting")
        }
        guard waiters.isEmpty else {
            state = .draining(resources, waiters: waiters)
            return .drain(resources)
        }
        state = .running(resources)
        return .none
    }

    /// The start failed: the node is released (drained) and cannot be started again.
    mutating func startFailed() -> StartedAction {
        guard case .starting(let waiters) = state else {
            preconditionFailure("a start settled in \(state), not while starting")
        }
        state = .draining(nil, waiters: waiters)
        return .drain(nil)
    }

    /// A caller wants the node shut down and will wait on `waiter` for it.
    mutating func shutdownRequested(_ waiter: Waiter) -> ShutdownAction {
        switch state {
        case .idle:
            state = .draining(nil, waiters: [waiter])
            return .drain(nil)
        case .starting(var waiters):
            waiters.append(waiter)
            state = .starting(shutdownWaiters: waiters)
            return .wait
        case .running(let resources):
            state = .draining(resources, waiters: [waiter])
            return .drain(resources)
        case .draining(let resources, var waiters):
            waiters.append(waiter)
            state = .draining(resources, waiters: waiters)
            return .wait
        case .stopped:
            return .resume(waiter)
        }
    }

    /// The drain has finished: the node is stopped. Returns the waiters to resume.
    mutating func drainFinished() -> [Waiter] {
        guard case .draining(let resources, let waiters) = state else {
            preconditionFailure("a drain finished in \(state), not while draining")
        }
        state = .stopped(resources)
        return waiters
    }
}
