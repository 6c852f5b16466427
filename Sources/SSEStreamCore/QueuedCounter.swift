import Synchronization

/// Deliveries handed to one event loop and not yet run: the subscriber thread counts up, the
/// loop counts down, and the loop flushes at once when it runs the last one. Their bytes are
/// counted too, and whether the loop fell so far behind that deliveries are being dropped for a
/// catch-up from history (see `StreamHub`).
package final class QueuedCounter: Sendable {
    private let value = Atomic<Int>(0)
    private let queuedBytes = Atomic<Int>(0)
    private let behind = Atomic<Bool>(false)

    /// Deliveries queued now.
    package var count: Int { value.load(ordering: .relaxed) }

    /// Bytes of the deliveries queued now.
    package var bytes: Int { queuedBytes.load(ordering: .relaxed) }

    /// Whether deliveries are being dropped until the loop has drained.
    package var isBehind: Bool {
        get { behind.load(ordering: .acquiring) }
        set { behind.store(newValue, ordering: .releasing) }
    }

    package func increment(bytes: Int = 0) {
        value.add(1, ordering: .sequentiallyConsistent)
        queuedBytes.add(bytes, ordering: .relaxed)
    }

    /// Counts one down; true when none is left.
    package func decrementReachesZero(bytes: Int = 0) -> Bool {
        queuedBytes.subtract(bytes, ordering: .relaxed)
        return value.subtract(1, ordering: .sequentiallyConsistent).newValue == 0
    }
}
