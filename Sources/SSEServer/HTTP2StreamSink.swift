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
/// `--client-buffer` cut-off reads is the bytes written while SwiftNIO's HTTP/2 stream was
/// unwritable and not sent yet (each such write's promise completes once it has left). The
/// stream turns unwritable once it holds a few KiB that its peer's flow-control window (a
/// stream whose reader stopped reading) or the connection does not let out; what was written
/// before that is within those few KiB, and what is written but not flushed yet is queued by
/// design (one flush per loop turn). A stream that keeps up pays no promise per write, and a
/// burst that the connection sends a moment later does not count as a slow client.
final class HTTP2StreamSink: ChannelInboundHandler, StreamSinkHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var makeClient: ((HTTP2StreamSink, any EventLoop) -> StreamClient)?
    private(set) var client: StreamClient?
    private var context: ChannelHandlerContext?
    private var ended = false
    /// As SwiftNIO last said.
    private var isWritable = true
    /// Bytes written while the stream was unwritable that have not left yet.
    private var unsentWhileUnwritable = 0
    /// Of those, the ones not flushed yet: queued by design (one flush per loop turn), so not
    /// the client's backlog.
    private var unflushedWhileUnwritable = 0

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
        isWritable = context.channel.isWritable
        client.sinkWritabilityChanged(isWritable: isWritable)
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
        isWritable = context.channel.isWritable
        client?.sinkWritabilityChanged(isWritable: isWritable)
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
        guard let context, !ended, bytes.readableBytes > 0 else { return }
        guard !isWritable else {
            context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
            return
        }
        let count = bytes.readableBytes
        unsentWhileUnwritable += count
        unflushedWhileUnwritable += count
        let sent = context.eventLoop.makePromise(of: Void.self)
        sent.futureResult.assumeIsolated().whenComplete { [self] _ in unsentWhileUnwritable -= count }
        context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: sent)
    }

    func flush() {
        unflushedWhileUnwritable = 0
        context?.flush()
    }

    func writeAndFlush(_ bytes: ByteBuffer) {
        write(bytes)
        flush()
    }

    var unreadBytes: Int { max(0, unsentWhileUnwritable - unflushedWhileUnwritable) }

    func end(after last: ByteBuffer?) {
        guard let context, !ended else { return }
        if let last { write(last) }
        ended = true
        unflushedWhileUnwritable = 0
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
