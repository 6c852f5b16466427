import NIOCore
import NIOHTTP1

/// Carries out ``HTTPRequestGateState`` between SwiftNIO's HTTP/1 codec and the broker's
/// handlers: request parts and parser errors pass when the state lets them, reads stop while
/// anything is held, and ``HTTPConnectionEvent/nextRequest`` (from the request handler) and
/// every response's end let more through.
///
/// A request that becomes a stream removes it; what it held then is dropped (the stream
/// discards what is pipelined behind it) and a held read is done.
final class HTTPRequestGate: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var state = HTTPRequestGateState()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let event = state.received(.part(unwrapInboundIn(data))) {
            pass(event, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if let event = state.received(.parserError(parserError)) {
            pass(event, context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if state.readAsked() { context.read() }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let ended: Bool
        if case .end = unwrapOutboundIn(data) { ended = true } else { ended = false }
        context.write(data, promise: promise)
        if ended {
            state.responseEnded()
            release(context: context)
        }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? HTTPConnectionEvent, case .nextRequest = event else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        state.nextRequestAsked()
        promise?.succeed()
        release(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if state.removed() { context.read() }
    }

    /// Passes on whatever held events may go now, then a held read.
    private func release(context: ChannelHandlerContext) {
        while let event = state.nextReleased() {
            pass(event, context: context)
        }
        if state.readReleased() { context.read() }
    }

    private func pass(_ event: HTTPRequestGateState.Event, context: ChannelHandlerContext) {
        switch event {
        case .part(let part):
            context.fireChannelRead(wrapInboundOut(part))
        case .parserError(let error):
            context.fireErrorCaught(error)
        }
    }
}

@available(*, unavailable)
extension HTTPRequestGate: Sendable {}
