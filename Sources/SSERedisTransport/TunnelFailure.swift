import Synchronization

/// The first reason a tunnel broke, kept for the thread that later finds its socket closed.
public final class TunnelFailure: Sendable {
    private let reason = Mutex<String?>(nil)

    public init() {}

    /// Keeps `text` unless a reason is already kept (the first failure is the cause).
    func record(_ text: String) {
        reason.withLock { if $0 == nil { $0 = text } }
    }

    /// The first failure, or nil while none happened.
    public var text: String? { reason.withLock { $0 } }
}
