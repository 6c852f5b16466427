import NIOCore

/// A connection after it became an event stream: the HTTP handlers are gone, only this remains.
///
/// It writes the response head once, then the shared pre-framed bytes of each event. It keeps
/// no request state, so an idle stream costs little. Input from the client is discarded (an
/// EventSource sends nothing after its request), but reading continues so a disconnect is
/// noticed at once. A client whose unsent bytes pass the channel's high water mark is cut off:
/// it can never slow the others or grow the server's memory.
final class StreamConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The channels this stream receives.
    let channels: [String]
    private let isChunked: Bool
    private let head: ByteBuffer
    private let hub: StreamHub
    private var context: ChannelHandlerContext?
    private var isRegistered = false
    private var hasPendingWrites = false

    init(channels: [String], isChunked: Bool, head: ByteBuffer, hub: StreamHub) {
        self.channels = channels
        self.isChunked = isChunked
        self.head = head
        self.hub = hub
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        context.writeAndFlush(wrapOutboundOut(head), promise: nil)
        guard context.channel.isActive else { return }
        isRegistered = true
        hub.register(self, on: context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        unregister()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Discarded on purpose, whatever its type: requests pipelined behind a stream are never
        // answered, because the stream never ends.
    }

    func channelInactive(context: ChannelHandlerContext) {
        unregister()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable {
            hub.noteSlowClientCutOff()
            context.close(promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Queues an event's bytes; returns true when this client now needs a flush.
    func enqueue(_ event: EncodedEvent) -> Bool {
        guard let context else { return false }
        context.write(wrapOutboundOut(event.bytes(chunked: isChunked)), promise: nil)
        defer { hasPendingWrites = true }
        return !hasPendingWrites
    }

    /// Flushes what `enqueue` queued.
    func flushPending() {
        hasPendingWrites = false
        context?.flush()
    }

    /// Ends the stream cleanly (the terminating chunk for HTTP/1.1), then closes, so an
    /// EventSource reconnects, through the load balancer, to another node.
    func finish() {
        guard let context else { return }
        unregister()
        if isChunked {
            context.write(wrapOutboundOut(ByteBuffer(staticString: "0\r\n\r\n")), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: nil)
        context.close(mode: .output, promise: nil)
    }

    private func unregister() {
        guard isRegistered, let context else { return }
        isRegistered = false
        hub.unregister(self, on: context.eventLoop)
    }
}
