import NIOCore
import NIOHTTP2

/// Closes an HTTP/2 connection once its HTTP/2 handler reports a protocol error.
///
/// swift-nio-http2 (1.46) answers a connection error with GOAWAY and passes the error on, but
/// leaves the connection open: RFC 9113 (section 5.4.1) says it must close, and left open it
/// answers every later read with another GOAWAY while its streams run on. A stream error is
/// reported the same way (after its RST_STREAM), and the two cannot be told apart here; both
/// mean a client that breaks the protocol, so its connection is closed either way. That harms
/// nobody but that client, whose requests all share this connection.
final class HTTP2ConnectionErrorCloser: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // What the HTTP/2 handler wrote (its GOAWAY) leaves before the close.
        context.flush()
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension HTTP2ConnectionErrorCloser: Sendable {}
