import Synchronization

/// Deliveries handed to one event loop and not yet run: the subscriber thread counts up, the
/// loop counts down, and the loop flushes at once when it runs the last one.
final class QueuedCounter: Sendable {
    private let value = Atomic<Int>(0)

    func increment() {
        value.add(1, ordering: .sequentiallyConsistent)
    }

    /// Counts one down; true when none is left.
    func decrementReachesZero() -> Bool {
        value.subtract(1, ordering: .sequentiallyConsistent).newValue == 0
    }
}
