import NIOCore

/// Relays bytes between two channels on the same event loop, in both directions, with
/// backpressure: a side reads only while its partner can take writes.
///
/// One of a matched pair (`matchedPair(failure:)`), one per channel. Bytes are forwarded as
/// they come (no copy, no reframing), flushed at the end of each read burst. When either channel
/// closes or fails, both close; the first failure is kept in `failure` so the tunnel's user can
/// tell why the connection went away. After the swift-nio-examples `GlueHandler`.
final class TunnelGlueHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: TunnelGlueHandler?
    private var context: ChannelHandlerContext?
    /// A `read()` held back because the partner could not take more.
    private var pendingRead = false
    private let failure: TunnelFailure

    private init(failure: TunnelFailure) {
        self.failure = failure
    }

    /// Two handlers that relay to each other.
    static func matchedPair(failure: TunnelFailure) -> (TunnelGlueHandler, TunnelGlueHandler) {
        let first = TunnelGlueHandler(failure: failure)
        let second = TunnelGlueHandler(failure: failure)
        first.partner = second
        second.partner = first
        return (first, second)
    }

    private func partnerWrite(_ buffer: ByteBuffer) {
        context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerClose() {
        context?.close(promise: nil)
    }

    private func partnerBecameWritable() {
        guard pendingRead else { return }
        pendingRead = false
        context?.read()
    }

    private var partnerIsWritable: Bool {
        context?.channel.isWritable ?? false
    }
}

extension TunnelGlueHandler: ChannelDuplexHandler {
    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.partnerWrite(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerClose()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failure.record(TLSTunnelError.reason(for: error))
        partner?.partnerClose()
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            partner?.partnerBecameWritable()
        }
    }

    func read(context: ChannelHandlerContext) {
        if partner?.partnerIsWritable ?? false {
            context.read()
        } else {
            pendingRead = true
        }
    }
}

@available(*, unavailable)
extension TunnelGlueHandler: Sendable {}
