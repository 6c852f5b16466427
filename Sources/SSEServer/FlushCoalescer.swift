import NIOCore

/// Turns the flushes an HTTP/2 connection gets within one event-loop turn into one.
///
/// Every stream of a connection flushes on its own, and each stream flush flushes the
/// connection: an event for 100 streams of one connection would be 100 TLS records and 100
/// `write`s. Sitting below the HTTP/2 handler, this lets the first flush of a turn through at
/// the end of the tasks already queued on the loop (the rest of the fan-out) and drops the
/// others, so the connection writes once per turn. A close flushes first, so nothing written
/// before it (a GOAWAY, a last DATA frame) is lost.
final class FlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var flushQueued = false

    func flush(context: ChannelHandlerContext) {
        guard !flushQueued else { return }
        flushQueued = true
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            bound.value.handler.flushNow(context: bound.value.context)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        flushNow(context: context)
        context.close(mode: mode, promise: promise)
    }

    private func flushNow(context: ChannelHandlerContext) {
        guard flushQueued else { return }
        flushQueued = false
        context.flush()
    }
}

@available(*, unavailable)
extension FlushCoalescer: Sendable {}
