import NIOCore
import Synchronization

/// Every open connection of a node: enforces `--max-connections` and lets a graceful shutdown
/// reach each connection.
final class ConnectionRegistry: Sendable {
    private let limit: Int
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    init(limit: Int) {
        self.limit = limit
    }

    /// Records `channel` unless the node is full; forgets it when it closes.
    func admit(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let admitted = channels.withLock { channels in
            guard channels.count < limit else { return false }
            channels[id] = channel
            return true
        }
        if admitted {
            channel.closeFuture.whenComplete { [self] _ in
                _ = channels.withLock { $0.removeValue(forKey: id) }
            }
        }
        return admitted
    }

    var count: Int { channels.withLock { $0.count } }

    /// Asks every connection to finish: streams end cleanly, idle HTTP connections close, and a
    /// request in flight gets its response before its connection closes.
    func quiesceAll() {
        for channel in channels.withLock({ Array($0.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    /// Closes whatever is still open.
    func closeAll() {
        for channel in channels.withLock({ Array($0.values) }) {
            channel.close(promise: nil)
        }
    }
}
