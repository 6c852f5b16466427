import NIOCore
import SSEStreamCore

/// A handler that carries one stream once a request became one: HTTP/1's
/// `StreamConnectionHandler` or HTTP/2's ``HTTP2StreamSink``.
protocol StreamSinkHandler: RemovableChannelHandler, StreamSink {
    /// Ends the stream cleanly (a drain began while the request became a stream).
    func finish()
}

extension StreamConnectionHandler: StreamSinkHandler {}
