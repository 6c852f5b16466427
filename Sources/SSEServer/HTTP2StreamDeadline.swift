import NIOCore
import NIOHTTP1
import SSEEndpoints

/// The deadlines of one HTTP/2 stream, the connection and its other streams unharmed:
/// - `--request-timeout` until the request has arrived (head and body): then 408, and the
///   stream ends (reset a moment later if even that answer cannot leave);
/// - `--idle-timeout` for an answer to leave once its head went out: HEADERS are not
///   flow-controlled but DATA is, so a client that never opens its window (or sends `100
///   Continue`'s body never) would otherwise hold the stream, and with it the connection, for
///   ever; the stream is reset then.
/// None applies once the request became an event stream (the client buffer bounds that).
///
/// It also takes the ``HTTPConnectionEvent``s that ``HTTPRequestHandler`` sends toward the
/// head of the pipeline, which over HTTP/1 are the request gate's and the connection timeout's.
final class HTTP2StreamDeadline: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let requestTimeout: TimeAmount
    private let answerTimeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    /// The request deadline passed and the 408 went out: nothing else is written on this stream.
    private var timedOut = false
    /// The request is in hand (its end came, or its answer started): its deadline is off.
    private var requestDone = false

    /// How long a 408 has to leave before the stream is reset.
    static let closeGrace = TimeAmount.seconds(1)

    init(requestTimeout: TimeAmount, answerTimeout: TimeAmount) {
        self.requestTimeout = requestTimeout
        self.answerTimeout = answerTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        arm(after: requestTimeout) { handler in handler.timeOut() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    private func arm(after delay: TimeAmount, _ fire: @escaping (HTTP2StreamDeadline) -> Void) {
        guard let context else { return }
        stop()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            timer = nil
            fire(self)
        }
    }

    /// The request did not arrive in time: 408, then the stream ends.
    private func timeOut() {
        guard let context else { return }
        timedOut = true
        let seconds = Double(requestTimeout.nanoseconds) / 1e9
        let response = BrokerResponse.error(HTTPError(.requestTimeout, "request not received within \(seconds) seconds"), closeAfter: true)
        let head = HTTPResponseWriter.head(response, version: .http2, keepAlive: false)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body = response.body {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
        // Its DATA may be held by a window the client never opens.
        arm(after: Self.closeGrace) { handler in handler.context?.close(promise: nil) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !timedOut else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200:
            // The answer started: it has --idle-timeout to leave (`100 Continue` changes nothing).
            requestDone = true
            arm(after: answerTimeout) { handler in handler.context?.close(promise: nil) }
            context.write(data, promise: promise)
        case .end:
            let ended = promise ?? context.eventLoop.makePromise()
            ended.futureResult.assumeIsolated().whenComplete { [self] _ in stop() }
            context.write(data, promise: ended)
        default:
            context.write(data, promise: promise)
        }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? HTTPConnectionEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch event {
        case .requestEnded:
            // The request is in hand; an answer may still wait on Redis (whose calls are bounded).
            if !requestDone {
                requestDone = true
                stop()
            }
        case .becameStream:
            stop()
        case .responseEnded, .nextRequest:
            break
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
