/// Counts a node's stream clients per channel and per event loop; decides when the node must
/// SUBSCRIBE (first client of a channel) and UNSUBSCRIBE (last one gone).
///
/// A pure value in the shape of postgres-nio's `ListenStateMachine`: it returns what to do
/// and does no I/O, so the refcounting is tested without Redis.
struct SubscriptionTable {
    /// What the caller must tell Redis.
    enum Action: Equatable {
        case none
        case subscribe(String)
        case unsubscribe(String)
    }

    /// channel → (loop index → clients of that channel on that loop)
    private var clients: [String: [Int: Int]] = [:]

    /// Channels with at least one client.
    var channels: Dictionary<String, [Int: Int]>.Keys { clients.keys }

    /// Records a client of `channel` on loop `loop`.
    mutating func add(channel: String, loop: Int) -> Action {
        let isFirst = clients[channel] == nil
        clients[channel, default: [:]][loop, default: 0] += 1
        return isFirst ? .subscribe(channel) : .none
    }

    /// Forgets a client of `channel` on loop `loop`.
    mutating func remove(channel: String, loop: Int) -> Action {
        guard var perLoop = clients[channel], let count = perLoop[loop] else {
            preconditionFailure("removing a client that was never added: \(channel) on loop \(loop)")
        }
        if count > 1 {
            perLoop[loop] = count - 1
        } else {
            perLoop[loop] = nil
        }
        if perLoop.isEmpty {
            clients[channel] = nil
            return .unsubscribe(channel)
        }
        clients[channel] = perLoop
        return .none
    }

    /// The loops that have clients of `channel`.
    func loops(for channel: String) -> Dictionary<Int, Int>.Keys? {
        clients[channel]?.keys
    }

    /// Clients of `channel` on this node.
    func clientCount(for channel: String) -> Int {
        clients[channel]?.values.reduce(0, +) ?? 0
    }
}
