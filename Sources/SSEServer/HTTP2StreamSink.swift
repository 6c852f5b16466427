import NIOCore
import NIOHTTP1
import SSEStreamCore
import SSEWire

/// The sink of a stream carried by one HTTP/2 stream: events leave as DATA frames through the
/// stream's HTTP/1-to-HTTP/2 codec, and the stream ends with END_STREAM, so EventSource
/// reconnects; a client cut off as too slow gets RST_STREAM on its stream alone, its
/// connection and sibling streams unharmed.
///
/// The head was sent by ``HTTPRequestHandler`` before this handler took over. The backlog the
/// `--client-buffer` cut-off reads is the bytes handed to HTTP/2 and not yet sent: SwiftNIO's
/// HTTP/2 stream holds writes that its peer's flow-control window does not let out (a stream
/// whose reader stopped reading), and completes each write's promise once it has left.
final class HTTP2StreamSink: ChannelInboundHandler, StreamSinkHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var makeClient: ((HTTP2StreamSink, any EventLoop) -> StreamClient)?
    private(set) var client: StreamClient?
    private var context: ChannelHandlerContext?
    /// Bytes written and not yet sent by HTTP/2 (the write's promise has not completed).
    private var pendingBytes = 0
    /// Bytes written since the last flush: queued by design, not the client's backlog.
    private var unflushedBytes = 0
    private var ended = false

    init(
        channels: [ChannelName],
        resumeFrom: String?,
        opening: ByteBuffer,
        expiresAt: Double?,
        hub: StreamHub,
        clientBufferBytes: Int
    ) {
        self.makeClient = { sink, loop in
            StreamClient(
                channels: channels,
                resumeFrom: resumeFrom,
                expiresAt: expiresAt,
                opening: opening,
                isChunked: false,
                clientBufferBytes: clientBufferBytes,
                hub: hub,
                sink: sink,
                eventLoop: loop
            )
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        guard let makeClient else { return }
        self.makeClient = nil
        let client = makeClient(self, context.eventLoop)
        self.client = client
        client.sinkWritabilityChanged(isWritable: context.channel.isWritable)
        client.start(isActive: context.channel.isActive)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // An EventSource sends nothing after its request; whatever comes is dropped.
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        client?.sinkWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            client?.finish()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func release() {
        client?.sinkClosed()
        client = nil
    }

    func finish() {
        client?.finish()
    }

    // MARK: StreamSink

    func write(_ bytes: ByteBuffer) {
        guard let context, !ended else { return }
        let count = bytes.readableBytes
        guard count > 0 else { return }
        pendingBytes += count
        unflushedBytes += count
        let sent = context.eventLoop.makePromise(of: Void.self)
        sent.futureResult.assumeIsolated().whenComplete { [self] _ in pendingBytes -= count }
        context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: sent)
    }

    func flush() {
        unflushedBytes = 0
        context?.flush()
    }

    func writeAndFlush(_ bytes: ByteBuffer) {
        write(bytes)
        flush()
    }

    var unreadBytes: Int { max(0, pendingBytes - unflushedBytes) }

    func end(after last: ByteBuffer?) {
        guard let context, !ended else { return }
        if let last { write(last) }
        ended = true
        unflushedBytes = 0
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func abort() {
        // Closing an HTTP/2 stream that has not ended resets it (RST_STREAM): this stream only.
        context?.close(promise: nil)
    }
}

@available(*, unavailable)
extension HTTP2StreamSink: Sendable {}
