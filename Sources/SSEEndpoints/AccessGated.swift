import SSEAuth

/// An endpoint's answer, either known now or known once an access check has run.
///
/// The check is `async` (jwt-kit's key collection is an actor), so hosts run it their way: the
/// NIO host as a task whose result comes back to the connection's event loop, a framework host
/// by awaiting it. `then` must run where the request is handled (for the NIO host, its loop).
package enum AccessGated<Value> {
    case decided(Value)
    case afterCheck(@Sendable () async -> AccessDecision, then: (AccessDecision) -> Value)

    /// The same gate with `transform` applied to its answer.
    package func map<Other>(_ transform: @escaping (Value) -> Other) -> AccessGated<Other> {
        switch self {
        case .decided(let value):
            return .decided(transform(value))
        case .afterCheck(let check, let then):
            return .afterCheck(check) { transform(then($0)) }
        }
    }

    /// The answer, awaiting the check when there is one.
    package func value() async -> Value {
        switch self {
        case .decided(let value):
            return value
        case .afterCheck(let check, let then):
            return then(await check())
        }
    }
}
