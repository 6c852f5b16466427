import Logging
import SSEPublisher

/// Routes and background work mounted on a node from outside the core server (the demo).
///
/// The extension point that keeps such features out of the broker's own modules: the host
/// matches ``routes`` after its own endpoints and runs ``run()`` while it serves.
package protocol BrokerExtension: Sendable {
    /// Matched after the broker's endpoints; a path the broker serves is never an extension's.
    var routes: [BrokerRoute] { get }
    /// Background work, from the node's start until it is cancelled when the node drains.
    func run() async
}

/// Makes the extension a node mounts (the demo), from the node's parts.
package typealias BrokerExtensionFactory = @Sendable (BrokerExtensionContext) -> any BrokerExtension

/// What a node hands the extensions it mounts.
package struct BrokerExtensionContext: Sendable {
    /// The node's own publisher (its Redis connection and history).
    package let publisher: SSEPublisher
    /// Open streams on the node.
    package let streamCount: @Sendable () -> Int
    package let logger: Logger

    package init(publisher: SSEPublisher, streamCount: @escaping @Sendable () -> Int, logger: Logger) {
        self.publisher = publisher
        self.streamCount = streamCount
        self.logger = logger
    }
}
