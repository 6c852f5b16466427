import Logging
import NIOCore
import NIOHTTP1
import SSEStreamCore
import SSEAuth
import SSEEndpoints
import SSEWire

/// Carries one HTTP/1.x request at a time (NIO's pipelining handler orders them) from the
/// decoder to the endpoints and their answer to the encoder.
///
/// The decisions are ``Router``'s and ``BrokerEndpoints``'s; this handler only sequences them
/// on the connection: it reads the head and the body (at most `--max-payload`), runs access
/// checks off the loop and comes back to it, writes each ``BrokerResponse`` through
/// ``HTTPResponseWriter``, and turns the connection into a stream. `POST /publish` is
/// authorized from its head while its body arrives (a refused one is answered 401/403 and
/// closed without waiting for the body; `Expect: 100-continue` is answered only once the head
/// is allowed), then handed to the publisher's Redis thread, answered when Redis has.
/// ``RequestTimeoutHandler`` is told when a request ends, when a response ends and when the
/// connection becomes a stream.
final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// What answers a request, as decided from its head.
    private enum Target {
        case route(Router.Route)
        case publish(channel: String)
        case answer(BrokerResponse)
    }

    /// Where a publish's access decision, started at its head, stands.
    private enum PublishCheck {
        case pending
        case allowed
    }

    /// The request whose head arrived and whose end has not.
    private struct Receiving {
        let head: HTTPRequestHead
        let request: BrokerRequest
        let target: Target
        /// A publish's body so far, at most `--max-payload`.
        var body: ByteBuffer?
        /// Body bytes of any other request, which are ignored, also at most `--max-payload`.
        var ignoredBytes = 0
        var publishCheck: PublishCheck?
    }

    private enum State {
        case idle
        case receiving(Receiving)
        /// A request that ended while earlier answers were still unsent; it proceeds once the
        /// channel is writable again.
        case parked(Receiving)
        /// A publish whose body is all here, waiting for the decision its head started.
        case awaitingPublishCheck(Receiving)
        /// An answer went out before the request ended (body too large, publish refused); the
        /// connection closes.
        case closing
        /// Waiting for an access decision or for Redis to answer a publish.
        case waiting
    }

    private let services: BrokerServices
    private var endpoints: BrokerEndpoints { services.endpoints }
    /// The connection's socket, for a stream's direct writes.
    private let socket: Int32
    /// The HTTP handlers ``HTTPPipeline`` installed beside this one, which a stream replaces.
    private let replacedByStream: HTTPPipeline.StreamReplaced
    private var state = State.idle
    /// A graceful shutdown asked this connection to finish.
    private var quiesceRequested = false
    /// The connection is over for this handler: a protocol error was answered by
    /// `HTTPProtocolErrorResponder`, or the connection broke or closed. An access decision or a
    /// publish that completes later must not answer again (a second response to one request).
    private var ended = false

    init(services: BrokerServices, socket: Int32, replacedByStream: HTTPPipeline.StreamReplaced) {
        self.services = services
        self.socket = socket
        self.replacedByStream = replacedByStream
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .idle):
            receive(context: context, head: head)
        case (.body(var chunk), .receiving(var request)):
            let limit = endpoints.configuration.maxPayloadBytes
            if var body = request.body {
                guard body.readableBytes + chunk.readableBytes <= limit else {
                    refuseEarly(context: context, head: request.head, endpoints.bodyTooLarge(publish: true))
                    return
                }
                state = .idle  // drop the references so the append does not copy
                request.body = nil
                body.writeBuffer(&chunk)
                request.body = body
            } else {
                // A body nobody asked for (GET with a body) is ignored, but not without end.
                request.ignoredBytes += chunk.readableBytes
                guard request.ignoredBytes <= limit else {
                    refuseEarly(context: context, head: request.head, endpoints.bodyTooLarge(publish: false))
                    return
                }
            }
            state = .receiving(request)
        case (.body, _):
            break
        case (.end, .receiving(let request)):
            context.triggerUserOutboundEvent(HTTPConnectionEvent.requestEnded, promise: nil)
            guard context.channel.isWritable else {
                // Earlier answers are still unsent (a client pipelining without reading): this
                // one waits, and with it every request behind it, instead of piling up.
                state = .parked(request)
                return
            }
            proceed(context: context, with: request)
        case (_, .closing):
            break
        case (.head, _), (.end, _):
            // NIO's pipelining handler delivers one request at a time, so this is our bug.
            services.logger.error("unexpected request part order; closing the connection")
            context.close(promise: nil)
        }
    }

    /// Routes a request from its head; a publish is admitted (or refused) at once.
    private func receive(context: ChannelHandlerContext, head: HTTPRequestHead) {
        var request = BrokerRequest(head, peer: nil)
        let route = services.router.route(method: request.method, path: request.path)
        switch route {
        case .publish:
            request.peer = context.channel.remoteAddress
            switch endpoints.admitPublish(request) {
            case .refuseNow(let response):
                refuseEarly(context: context, head: head, response)
            case .refuseAtEnd(let response):
                state = .receiving(Receiving(head: head, request: request, target: .answer(response)))
            case .admit(let channel, let check):
                var receiving = Receiving(head: head, request: request, target: .publish(channel: channel))
                receiving.body = context.channel.allocator.buffer(capacity: 0)
                receiving.publishCheck = .pending
                state = .receiving(receiving)
                checkPublish(context: context, request: request, head: head, check: check)
            }
        case .mounted:
            request.peer = context.channel.remoteAddress
            state = .receiving(Receiving(head: head, request: request, target: .route(route)))
        default:
            state = .receiving(Receiving(head: head, request: request, target: .route(route)))
        }
    }

    /// A request that ended: published, waiting for its publish check, or dispatched.
    private func proceed(context: ChannelHandlerContext, with request: Receiving) {
        switch (request.target, request.publishCheck) {
        case (.publish, .pending?):
            state = .awaitingPublishCheck(request)
        case (.publish(let channel), _):
            state = .idle
            publish(context: context, request: request, channel: channel)
        case (.answer(let response), _):
            state = .idle
            respond(context: context, to: request.head, response)
        case (.route(let route), _):
            state = .idle
            dispatch(context: context, head: request.head, request: request.request, route: route)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .parked(let request) = state {
            proceed(context: context, with: request)
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // SwiftNIO's pipelining handler holds a shutdown's request to finish while a request is
        // in flight, and passes it on when it is removed: for a request that becomes a stream,
        // that is in the middle of `becomeStream`, before the stream handler is there to get it.
        if event is ChannelShouldQuiesceEvent { quiesceRequested = true }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Protocol errors were answered by `HTTPProtocolErrorResponder`; anything else
        // (a reset connection, say) ends this connection and no other.
        ended = true
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        ended = true
        context.fireChannelInactive()
    }

    private func dispatch(context: ChannelHandlerContext, head: HTTPRequestHead, request: BrokerRequest, route: Router.Route) {
        switch route {
        case .health:
            respond(context: context, to: head, endpoints.health())
        case .ready:
            respond(context: context, to: head, endpoints.ready())
        case .metrics:
            respond(context: context, to: head, endpoints.metrics())
        case .preflight(let methods):
            respond(context: context, to: head, endpoints.preflight(request, methods: methods))
        case .refuse(let error):
            respond(context: context, to: head, endpoints.refusal(error, for: request))
        case .mounted(let mounted):
            whenDecided(context: context, mounted.respond(request, endpoints)) { [self] response in
                respond(context: context, to: head, response)
            }
        case .stream:
            whenDecided(context: context, endpoints.stream(request)) { [self] answer in
                switch answer {
                case .respond(let response):
                    respond(context: context, to: head, response)
                case .open(let opening) where opening.headOnly:
                    let headers = StreamPreamble.headers + opening.corsHeaders + [("Transfer-Encoding", "chunked")]
                    respond(context: context, to: head, BrokerResponse(status: .ok, headers: headers, body: nil))
                case .open(let opening):
                    becomeStream(context: context, head: head, opening: opening)
                }
            }
        case .publish:
            // Publishes are admitted from their head, in `receive`.
            preconditionFailure("a publish is dispatched from its access check")
        }
    }

    // MARK: Access

    /// Goes on with `gated`'s answer: at once, or once its access check (a task off the loop:
    /// jwt-kit's key collection is an actor) has come back to the loop.
    private func whenDecided<Value>(context: ChannelHandlerContext, _ gated: AccessGated<Value>, then proceed: @escaping (Value) -> Void) {
        switch gated {
        case .decided(let value):
            proceed(value)
        case .afterCheck(let check, let resolve):
            state = .waiting
            let promise = context.eventLoop.makePromise(of: AccessDecision.self)
            promise.completeWithTask { await check() }
            promise.futureResult.assumeIsolated().whenSuccess { [self] decision in
                guard !ended else { return }
                state = .idle
                proceed(resolve(decision))
            }
        }
    }

    /// Starts a publish's access decision from its head alone. Allowed: an `Expect:
    /// 100-continue` gets its `100 Continue`, and the publish goes out once the body is here.
    /// Refused: 401/403 with `Connection: close` at once, whatever of the body has arrived.
    private func checkPublish(
        context: ChannelHandlerContext,
        request: BrokerRequest,
        head: HTTPRequestHead,
        check: AccessGated<AccessDecision>
    ) {
        switch check {
        case .decided(let decision):
            // Open publishing and the publish key: decided here, on the loop, with no task.
            publishCheckDecided(context: context, request: request, head: head, decision)
        case .afterCheck(let check, let then):
            // A JWT's verification (jwt-kit's actor) leaves the loop.
            let promise = context.eventLoop.makePromise(of: AccessDecision.self)
            promise.completeWithTask { await check() }
            promise.futureResult.assumeIsolated().whenSuccess { [self] decision in
                guard !ended else { return }
                publishCheckDecided(context: context, request: request, head: head, then(decision))
            }
        }
    }

    /// A publish's access decision is known: refuse at once, or let the body's end publish.
    private func publishCheckDecided(context: ChannelHandlerContext, request: BrokerRequest, head: HTTPRequestHead, _ decision: AccessDecision) {
        if let refusal = endpoints.publishRefusal(decision, for: request) {
            switch state {
            case .receiving, .awaitingPublishCheck, .parked:
                refuseEarly(context: context, head: head, refusal)
            case .idle, .closing, .waiting:
                break
            }
            return
        }
        switch state {
        case .parked(var receiving):
            receiving.publishCheck = .allowed
            state = .parked(receiving)
        case .receiving(var receiving):
            receiving.publishCheck = .allowed
            state = .receiving(receiving)
            if request.expectsContinue {
                let continueHead = HTTPResponseHead(version: head.version, status: HTTPResponseWriter.status(.continue))
                context.writeAndFlush(wrapOutboundOut(.head(continueHead)), promise: nil)
            }
        case .awaitingPublishCheck(let receiving):
            if case .publish(let channel) = receiving.target {
                state = .idle
                publish(context: context, request: receiving, channel: channel)
            }
        case .idle, .closing, .waiting:
            break  // answered already (413, say) or closed
        }
    }

    // MARK: Publishing

    private func publish(context: ChannelHandlerContext, request: Receiving, channel: String) {
        state = .waiting
        let promise = context.eventLoop.makePromise(of: BrokerResponse.self)
        endpoints.publish(body: (request.body ?? ByteBuffer()).readableBytesView, channel: channel, request: request.request) { response in
            promise.succeed(response)
        }
        promise.futureResult.assumeIsolated().whenSuccess { [self] response in
            state = .idle
            respond(context: context, to: request.head, response)
        }
    }

    // MARK: Streams

    /// Replaces the HTTP handlers with a `StreamConnectionHandler`, which writes the head itself.
    private func becomeStream(context: ChannelHandlerContext, head: HTTPRequestHead, opening: StreamOpening) {
        let isChunked = head.version.major > 1 || (head.version.major == 1 && head.version.minor >= 1)
        let configuration = services.configuration
        let preamble = opening.corsHeaders.isEmpty
            ? services.hub.preamble
            : StreamPreamble(
                retryMilliseconds: configuration.retryMilliseconds,
                nodeName: configuration.demo ? configuration.nodeName : nil,
                extraHeaders: opening.corsHeaders
            )
        let stream = StreamConnectionHandler(
            channels: opening.channels.map { ChannelName($0) },
            resumeFrom: opening.resumeFrom,
            isChunked: isChunked,
            preamble: preamble.bytes(chunked: isChunked),
            expiresAt: opening.expiresAt,
            hub: services.hub,
            clientBufferBytes: configuration.clientBufferBytes,
            socket: socket
        )
        // Requests pipelined behind the stream, which SwiftNIO passes on as its handlers leave,
        // are never answered: the stream never ends, and its head must be the first thing sent.
        state = .closing
        context.triggerUserOutboundEvent(HTTPConnectionEvent.becameStream, promise: nil)
        let pipeline = context.pipeline.syncOperations
        do {
            replacedByStream.remove(from: pipeline)
            try pipeline.addHandler(stream)
            pipeline.removeHandler(context: context, promise: nil)
            if quiesceRequested { stream.finish() }
        } catch {
            services.logger.error("cannot turn a connection into a stream", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    // MARK: Responses

    /// Answers before the request ended (its body is not read) and closes the connection.
    private func refuseEarly(context: ChannelHandlerContext, head: HTTPRequestHead, _ response: BrokerResponse) {
        state = .closing
        context.triggerUserOutboundEvent(HTTPConnectionEvent.requestEnded, promise: nil)
        var response = response
        response.closeAfter = true
        respond(context: context, to: head, response)
    }

    /// Writes a complete response, closing afterwards unless the request keeps the connection alive.
    private func respond(context: ChannelHandlerContext, to head: HTTPRequestHead, _ response: BrokerResponse) {
        guard !ended else { return }
        let (done, keepAlive) = HTTPResponseWriter.write(response, to: head, context: context, wrap: wrapOutboundOut)
        if keepAlive {
            context.triggerUserOutboundEvent(HTTPConnectionEvent.responseEnded, promise: nil)
        } else {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension HTTPRequestHandler: Sendable {}
