import NIOCore
import NIOHTTP1
import SSEEndpoints

/// `--request-timeout` for one HTTP/2 stream: a request that has not arrived (head and body)
/// in time is answered 408 and its stream ends, the connection and its other streams unharmed.
/// The deadline is off once the request ended or became an event stream.
///
/// It also takes the ``HTTPConnectionEvent``s that ``HTTPRequestHandler`` sends toward the
/// head of the pipeline, which over HTTP/1 are the request gate's and the connection timeout's.
final class HTTP2StreamDeadline: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    /// The deadline passed and the 408 went out: nothing else is written on this stream.
    private var timedOut = false

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            bound.value.handler.timeOut(context: bound.value.context)
        }
    }

    /// The request did not arrive in time: 408, then the stream ends.
    private func timeOut(context: ChannelHandlerContext) {
        timer = nil
        timedOut = true
        let seconds = Double(timeout.nanoseconds) / 1e9
        let response = BrokerResponse.error(HTTPError(.requestTimeout, "request not received within \(seconds) seconds"), closeAfter: true)
        let head = HTTPResponseWriter.head(response, version: .http2, keepAlive: false)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body = response.body {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !timedOut else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        // An answer started before the deadline: the request is not timed any longer.
        if case .head = unwrapOutboundIn(data) { stop() }
        context.write(data, promise: promise)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? HTTPConnectionEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch event {
        case .requestEnded, .becameStream: stop()
        case .responseEnded, .nextRequest: break
        }
        promise?.succeed()
    }

    private func stop() {
        timer?.cancel()
        timer = nil
    }
}

@available(*, unavailable)
extension HTTP2StreamDeadline: Sendable {}
