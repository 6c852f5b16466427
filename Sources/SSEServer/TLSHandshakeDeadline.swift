import NIOCore
import NIOTLS

/// Closes a connection whose TLS handshake has not completed within the node's handshake
/// timeout (a client that connects and sends nothing, or sends it a byte at a time), and one
/// whose handshake failed. Sits after `NIOSSLServerHandler`; leaves once the handshake is done.
///
/// Failed handshakes are the client's business (a wrong or expired certificate on its side, a
/// plain-HTTP request on the HTTPS port, a scanner): they are closed quietly, logged at debug
/// level only, so nobody can fill the node's log by connecting.
final class TLSHandshakeDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let timeout: TimeAmount
    private var deadline = ClosingDeadline()

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        deadline.start(context, after: timeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            deadline.cancel()
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Before the handshake completes every error is the handshake's.
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension TLSHandshakeDeadline: Sendable {}
