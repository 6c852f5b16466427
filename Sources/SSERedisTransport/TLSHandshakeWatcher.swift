import NIOCore
import NIOSSL
import NIOTLS

/// Completes a promise when the TLS handshake completes, and fails it when the handshake
/// fails, the connection closes first, or `timeOut()` is called (the tunnel's deadline).
///
/// Sits after `NIOSSLClientHandler`. On a failed handshake it reads the server's certificate
/// dates, so "expired" is told apart from "not trusted" (BoringSSL reports both as
/// CERTIFICATE_VERIFY_FAILED). Once the handshake is done it passes everything on.
final class TLSHandshakeWatcher: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    private var promise: EventLoopPromise<Void>?
    private var context: ChannelHandlerContext?
    private let expectedName: String

    /// `expectedName` is the name the server's certificate must carry, for errors.
    init(promise: EventLoopPromise<Void>, expectedName: String) {
        self.promise = promise
        self.expectedName = expectedName
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, let promise {
            self.promise = nil
            promise.succeed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let promise else {
            context.fireErrorCaught(error)
            return
        }
        self.promise = nil
        let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate
        let reason = TLSTunnelError.reason(for: error, peerCertificate: certificate, expectedName: expectedName)
        promise.fail(TLSTunnelError(.handshakeFailed, reason))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let promise {
            self.promise = nil
            promise.fail(TLSTunnelError(.handshakeFailed, "the server closed the connection during the TLS handshake"))
        }
        context.fireChannelInactive()
    }

    /// The deadline passed: fails the handshake (if still pending) and closes the connection.
    func timeOut(after milliseconds: Int) {
        guard let promise else { return }
        self.promise = nil
        promise.fail(TLSTunnelError(.timedOut, "no TLS handshake within \(milliseconds) ms"))
        context?.close(promise: nil)
    }
}

@available(*, unavailable)
extension TLSHandshakeWatcher: Sendable {}
