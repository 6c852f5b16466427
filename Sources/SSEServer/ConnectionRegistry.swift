import NIOCore
import Synchronization

/// Every open connection of a node: enforces `--max-connections` and lets a graceful shutdown
/// reach each connection.
final class ConnectionRegistry: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var quiescing = false
    }

    private let limit: Int
    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = limit
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
            return (true, state.quiescing)
        }
        guard admitted else { return false }
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLock { $0.channels.removeValue(forKey: id) }
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
