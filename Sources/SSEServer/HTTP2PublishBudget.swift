/// The publishes one HTTP/2 connection may have in flight at once, across its streams: what
/// ``HTTPRequestHandler/maxPipelinedPublishes`` is for an HTTP/1 connection. Each stream
/// carries one request and its own body buffer, so without it a connection could hold a
/// `--max-payload` body on every stream it may open; the bound is lower than HTTP/1's because
/// these bodies are not bounded together. A publish beyond it is answered 429 at once, its body not read.
/// Used on the connection's loop only.
final class HTTP2PublishBudget {
    let limit: Int
    private(set) var inFlight = 0

    /// The default bound: 16 publishes, so at most 16 `--max-payload` bodies per connection.
    static let defaultLimit = 16

    init(limit: Int = HTTP2PublishBudget.defaultLimit) {
        self.limit = limit
    }

    /// Takes a slot; false when all are taken.
    func acquire() -> Bool {
        guard inFlight < limit else { return false }
        inFlight += 1
        return true
    }

    func release() {
        inFlight = max(0, inFlight - 1)
    }
}

@available(*, unavailable)
extension HTTP2PublishBudget: Sendable {}
