import NIOCore

/// Closes an HTTP/2 connection once the HTTP/2 handler has sent a GOAWAY with an error code,
/// as RFC 9113 (section 5.4.1) requires after a connection error.
///
/// swift-nio-http2 (1.46) sends that GOAWAY but leaves the connection open, answering each
/// later read with another GOAWAY while its streams run on. Its errors cannot tell a connection
/// error from a stream error (after which the connection must stay, its other streams
/// unharmed), but the GOAWAY can: this handler sits below the HTTP/2 handler, where each frame
/// it writes other than DATA is one buffer, and looks at GOAWAY frames only. A graceful GOAWAY
/// (NO_ERROR, a drain or an idle connection) closes nothing.
final class HTTP2ErrorGoAwayCloser: ChannelOutboundHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private var closeAfterFlush = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .byteBuffer(let buffer) = unwrapOutboundIn(data), Self.isErrorGoAway(buffer) {
            closeAfterFlush = true
        }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        context.flush()
        if closeAfterFlush {
            closeAfterFlush = false
            context.close(promise: nil)
        }
    }

    /// Whether `buffer` starts with a whole GOAWAY frame (type 7, on stream 0) whose error code
    /// is not NO_ERROR.
    static func isErrorGoAway(_ buffer: ByteBuffer) -> Bool {
        let start = buffer.readerIndex
        guard buffer.readableBytes >= 17,
            buffer.getInteger(at: start + 3, as: UInt8.self) == 0x7,
            buffer.getInteger(at: start + 5, as: UInt32.self).map({ $0 & 0x7FFF_FFFF }) == 0,
            let code = buffer.getInteger(at: start + 13, as: UInt32.self)
        else { return false }
        return code != 0
    }
}

@available(*, unavailable)
extension HTTP2ErrorGoAwayCloser: Sendable {}
