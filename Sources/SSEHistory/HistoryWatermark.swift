import SSEWire
import Synchronization

/// The highest history position a process has seen Redis vouch for, in the newest epoch.
///
/// Publishers pass it to the publish script, and nodes compare it with the counter after a
/// reconnect, so a counter that moved backwards (a restore, a promoted lagging replica, AOF
/// `everysec` after a crash) is caught before it re-issues positions clients already hold.
public final class HistoryWatermark: Sendable {
    private let value = Mutex<HistoryPosition?>(nil)

    public init() {}

    /// The highest position seen, if any.
    public var position: HistoryPosition? { value.withLock { $0 } }

    /// Records a position Redis vouched for; a newer epoch replaces an older one.
    public func observe(_ position: HistoryPosition) {
        value.withLock { current in
            if current.map({ $0 < position }) ?? true { current = position }
        }
    }
}
