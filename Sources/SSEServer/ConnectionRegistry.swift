import Metrics
import NIOCore
import Synchronization

/// Every open connection of a node: enforces `--max-connections` and lets a graceful shutdown
/// reach each connection, and tell when the last one has closed.
final class ConnectionRegistry: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var quiescing = false
        /// Run once, when no connection is open any more.
        var whenEmpty: [@Sendable () -> Void] = []
    }

    private let limit: Int
    private let state = Mutex(State())
    /// Records how many are open (`sse_connections`).
    private let gauge: Gauge?

    init(limit: Int, gauge: Gauge? = nil) {
        self.limit = limit
        self.gauge = gauge
    }

    /// Records `channel` unless the node is full; forgets it when it closes. Called from the
    /// channel's initializer, on its event loop. A connection admitted once a graceful shutdown
    /// has begun (accepted just before the listener closed) is asked to finish as soon as its
    /// pipeline is in place, like the rest, so it cannot hold the drain open until the timeout.
    func admit(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let (admitted, quiescing) = state.withLock { state in
            guard state.channels.count < limit else { return (false, state.quiescing) }
            state.channels[id] = channel
            gauge?.record(state.channels.count)
            return (true, state.quiescing)
        }
        guard admitted else { return false }
        channel.closeFuture.whenComplete { [self] _ in
            let emptied: [@Sendable () -> Void] = state.withLock { state in
                guard state.channels.removeValue(forKey: id) != nil else { return [] }
                gauge?.record(state.channels.count)
                guard state.channels.isEmpty else { return [] }
                defer { state.whenEmpty.removeAll() }
                return state.whenEmpty
            }
            for action in emptied { action() }
        }
        if quiescing {
            // Runs after the initializer and the registration that follows it on this loop.
            channel.eventLoop.execute {
                channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            }
        }
        return true
    }

    var count: Int { state.withLock { $0.channels.count } }

    /// Runs `action` once no connection is open: at once (on the caller's thread) if none is,
    /// else when the last one closes (on its event loop). A drain waits on this instead of
    /// polling the count. Connections admitted meanwhile count too: it runs when all have closed.
    func whenEmpty(_ action: @escaping @Sendable () -> Void) {
        let now = state.withLock { state in
            if state.channels.isEmpty { return true }
            state.whenEmpty.append(action)
            return false
        }
        if now { action() }
    }

    /// Asks every connection to finish: streams end cleanly, idle HTTP connections close, and a
    /// request in flight gets its response before its connection closes. Connections admitted
    /// from then on are asked as well.
    func quiesceAll() {
        let open = state.withLock { state in
            state.quiescing = true
            return Array(state.channels.values)
        }
        for channel in open {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    /// Closes whatever is still open.
    func closeAll() {
        for channel in state.withLock({ Array($0.channels.values) }) {
            channel.close(promise: nil)
        }
    }
}
