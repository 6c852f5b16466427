import Logging
import NIOCore
import NIOHTTP1
import SSEStreamCore
import SSEAuth
import SSEEndpoints
import SSEWire

/// Carries HTTP/1.x requests from the decoder to the endpoints and their answers to the
/// encoder, in request order.
///
/// The decisions are ``Router``'s and ``BrokerEndpoints``'s; this handler only sequences them
/// on the connection: it reads the head and the body (at most `--max-payload`), runs access
/// checks off the loop and comes back to it, writes each ``BrokerResponse`` through
/// ``HTTPResponseWriter``, and turns the connection into a stream. `POST /publish` is
/// authorized from its head while its body arrives (a refused one is answered 401/403 and
/// closed without waiting for the body; `Expect: 100-continue` is answered only once the head
/// is allowed), then handed to the publisher's Redis thread, answered when Redis has.
///
/// Pipelined publishes are worked on together: while earlier publishes wait for Redis, the
/// next request is taken (``HTTPRequestGate`` lets one through per ask), up to
/// ``maxPipelinedPublishes`` unanswered publishes holding at most `--max-payload` of bodies
/// per connection; their answers leave in request order. Every other request waits until all
/// earlier ones are answered and is then handled alone, as before.
/// ``RequestTimeoutHandler`` is told when a request ends, when a response ends and when the
/// connection becomes a stream.
final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Most publishes one HTTP/1 connection may have unanswered at once. Their bodies together
    /// stay under `--max-payload` as well (one more is taken only while they do), so memory per
    /// connection is bounded by one `--max-payload` whatever this is; a deep window lets a
    /// publisher on few connections keep Redis's group commit fed while fan-out holds the loops.
    static let maxPipelinedPublishes = 64

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
        /// Tells this request's access decision which request it is for.
        let id: UInt64
        let head: HTTPRequestHead
        let request: BrokerRequest
        let target: Target
        /// A publish's body so far, at most `--max-payload`.
        var body: ByteBuffer?
        /// Body bytes of any other request, which are ignored, also at most `--max-payload`.
        var ignoredBytes = 0
        var publishCheck: PublishCheck?
        /// `100 Continue` is owed once earlier answers are out (it must not precede them).
        var continueOwed = false

        /// Its answer queues behind earlier publishes' (a publish, or a publish's refusal).
        var isPublish: Bool {
            switch target {
            case .publish, .answer: true
            case .route: false
            }
        }
    }

    /// An answer owed to a request that ended, in request order.
    private struct Owed {
        enum Answer {
            /// A publish waiting for the access decision its head started.
            case checking(Receiving)
            /// A publish handed to Redis.
            case publishing
            case ready(BrokerResponse)
        }

        let id: UInt64
        let head: HTTPRequestHead
        /// Body bytes it holds, counted against `--max-payload` per connection.
        let bytes: Int
        var answer: Answer
    }

    private enum State {
        case idle
        case receiving(Receiving)
        /// A request that ended while it cannot go on yet: earlier answers are unsent (a client
        /// pipelining without reading), or it is not a publish and earlier publishes are
        /// unanswered. It goes on once they are out.
        case parked(Receiving)
        /// An answer went out (or is queued) before the request ended (body too large, publish
        /// refused); the connection closes after it.
        case closing
        /// Waiting for an access decision of a request other than a publish.
        case waiting
    }

    private let services: BrokerServices
    private var endpoints: BrokerEndpoints { services.endpoints }
    /// How a request that becomes a stream leaves the HTTP handlers.
    private let handoff: StreamHandoff
    private var state = State.idle
    /// Answers owed, oldest first; only publishes (and their refusals) are ever more than one.
    private var owed = CircularBuffer<Owed>(initialCapacity: 4)
    /// Body bytes the owed answers hold.
    private var owedBytes = 0
    private var nextRequestID: UInt64 = 0
    /// The gate lets one head through per ask, and starts with one.
    private var awaitingHead = true
    /// A graceful shutdown asked this connection to finish.
    private var quiesceRequested = false
    /// The connection is over for this handler: a protocol error was answered by
    /// `HTTPProtocolErrorResponder`, or the connection broke or closed. An access decision or a
    /// publish that completes later must not answer again (a second response to one request).
    private var ended = false
    /// A flush of written answers is queued behind the loop's pending tasks (see `flushSoon`).
    private var flushQueued = false
    /// This HTTP/2 stream holds one of its connection's publish slots.
    private var holdsPublishSlot = false

    init(services: BrokerServices, handoff: StreamHandoff) {
        self.services = services
        self.handoff = handoff
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head, .idle) where quiesceRequested:
            // Asked for before the shutdown came: not taken. The owed answers go out, the
            // last closing the connection.
            awaitingHead = false
            state = .closing
            if owed.isEmpty { context.close(promise: nil) }
        case (.head(let head), .idle):
            awaitingHead = false
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
            guard mayProceed(context: context, with: request) else {
                // Earlier answers are still unsent or owed: this one waits, and with it every
                // request behind it, instead of piling up.
                state = .parked(request)
                return
            }
            proceed(context: context, with: request)
        case (_, .closing):
            break
        case (.head, _), (.end, _):
            // The gate lets a head through only when asked, so this is our bug.
            services.logger.error("unexpected request part order; closing the connection")
            context.close(promise: nil)
        }
    }

    /// Routes a request from its head; a publish is admitted (or refused) at once.
    private func receive(context: ChannelHandlerContext, head: HTTPRequestHead) {
        var request = BrokerRequest(head, peer: nil)
        let id = takeRequestID()
        let route = services.router.route(method: request.method, path: request.path)
        switch route {
        case .publish:
            request.peer = context.channel.remoteAddress
            switch endpoints.admitPublish(request) {
            case .refuseNow(let response):
                refuseEarly(context: context, head: head, response)
            case .refuseAtEnd(let response):
                state = .receiving(Receiving(id: id, head: head, request: request, target: .answer(response)))
            case .admit(let channel, let check):
                guard takePublishSlot() else {
                    let error = HTTPError(.tooManyRequests, "too many publishes in flight on this HTTP/2 connection (\(http2PublishLimit)); retry when one is answered")
                    refuseEarly(context: context, head: head, .error(error, extraHeaders: [("Retry-After", "1")]))
                    return
                }
                var receiving = Receiving(id: id, head: head, request: request, target: .publish(channel: channel))
                receiving.body = context.channel.allocator.buffer(capacity: 0)
                receiving.publishCheck = .pending
                state = .receiving(receiving)
                checkPublish(context: context, id: id, request: request, head: head, check: check)
            }
        case .mounted:
            request.peer = context.channel.remoteAddress
            state = .receiving(Receiving(id: id, head: head, request: request, target: .route(route)))
        default:
            state = .receiving(Receiving(id: id, head: head, request: request, target: .route(route)))
        }
    }

    /// Whether a request that ended can go on now: its answer may queue behind the owed ones
    /// (a publish) or nothing is owed (anything else), and earlier answers are not stuck.
    private func mayProceed(context: ChannelHandlerContext, with request: Receiving) -> Bool {
        guard context.channel.isWritable else { return false }
        return request.isPublish ? owed.count < Self.maxPipelinedPublishes : owed.isEmpty
    }

    /// A request that ended: queued for its publish check, published, or dispatched.
    private func proceed(context: ChannelHandlerContext, with request: Receiving) {
        state = .idle
        let bytes = request.body?.readableBytes ?? 0
        switch (request.target, request.publishCheck) {
        case (.publish, .pending?):
            owe(Owed(id: request.id, head: request.head, bytes: bytes, answer: .checking(request)))
        case (.publish(let channel), _):
            owe(Owed(id: request.id, head: request.head, bytes: bytes, answer: .publishing))
            publish(context: context, request: request, channel: channel)
        case (.answer(let response), _):
            respond(context: context, to: request.head, response)
            return
        case (.route(let route), _):
            dispatch(context: context, head: request.head, request: request.request, route: route)
            return
        }
        askForNextRequest(context: context)
    }

    private func takeRequestID() -> UInt64 {
        defer { nextRequestID &+= 1 }
        return nextRequestID
    }

    private func owe(_ answer: Owed) {
        owed.append(answer)
        owedBytes += answer.bytes
    }

    /// Lets the gate pass the next request when this handler can take one now: idle, and
    /// either nothing owed or room for one more publish whose answer is not stuck.
    private func askForNextRequest(context: ChannelHandlerContext) {
        guard !ended, !quiesceRequested, !awaitingHead, case .idle = state else { return }
        if !owed.isEmpty {
            guard owed.count < Self.maxPipelinedPublishes,
                  owedBytes < endpoints.configuration.maxPayloadBytes,
                  context.channel.isWritable
            else { return }
        }
        awaitingHead = true
        context.triggerUserOutboundEvent(HTTPConnectionEvent.nextRequest, promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if case .parked(let request) = state, mayProceed(context: context, with: request) {
                proceed(context: context, with: request)
            } else {
                askForNextRequest(context: context)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiesceRequested = true
            // Nothing in progress: close now. Otherwise the last answer closes, or the stream
            // a request becomes is told to finish.
            if case .idle = state, owed.isEmpty { context.close(promise: nil) }
        }
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
        releasePublishSlot()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        releasePublishSlot()
    }

    /// The HTTP/2 connection's publish slots (named in its 429).
    private var http2PublishLimit: Int {
        guard case .http2(let budget) = handoff else { return Self.maxPipelinedPublishes }
        return budget.limit
    }

    /// Over HTTP/2, takes one of the connection's publish slots for this stream's publish
    /// (held until the stream ends); over HTTP/1 the owed queue bounds publishes itself.
    private func takePublishSlot() -> Bool {
        guard case .http2(let budget) = handoff else { return true }
        guard !holdsPublishSlot else { return true }
        guard budget.acquire() else { return false }
        holdsPublishSlot = true
        return true
    }

    private func releasePublishSlot() {
        guard holdsPublishSlot, case .http2(let budget) = handoff else { return }
        holdsPublishSlot = false
        budget.release()
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
        id: UInt64,
        request: BrokerRequest,
        head: HTTPRequestHead,
        check: AccessGated<AccessDecision>
    ) {
        switch check {
        case .decided(let decision):
            // Open publishing and the publish key: decided here, on the loop, with no task.
            publishCheckDecided(context: context, id: id, request: request, head: head, decision)
        case .afterCheck(let check, let then):
            // A JWT's verification (jwt-kit's actor) leaves the loop.
            let promise = context.eventLoop.makePromise(of: AccessDecision.self)
            promise.completeWithTask { await check() }
            promise.futureResult.assumeIsolated().whenSuccess { [self] decision in
                guard !ended else { return }
                publishCheckDecided(context: context, id: id, request: request, head: head, then(decision))
            }
        }
    }

    /// Request `id`'s publish access decision is known. Refused: at once if its body is still
    /// coming (the connection closes), or in its place among the owed answers if it ended.
    /// Allowed: its body's end publishes, or it publishes now if that end came already.
    private func publishCheckDecided(context: ChannelHandlerContext, id: UInt64, request: BrokerRequest, head: HTTPRequestHead, _ decision: AccessDecision) {
        let refusal = endpoints.publishRefusal(decision, for: request)
        switch state {
        case .receiving(var receiving) where receiving.id == id:
            if let refusal {
                refuseEarly(context: context, head: head, refusal)
                return
            }
            receiving.publishCheck = .allowed
            if request.expectsContinue { receiving.continueOwed = true }
            state = .receiving(receiving)
            sendContinueIfDue(context: context)
            return
        case .parked(var receiving) where receiving.id == id:
            if let refusal {
                refuseEarly(context: context, head: head, refusal)
                return
            }
            receiving.publishCheck = .allowed
            state = .parked(receiving)
            return
        default:
            break
        }
        guard let index = owed.firstIndex(where: { $0.id == id }), case .checking(let receiving) = owed[index].answer else {
            return  // answered already (413, say) or closed
        }
        if let refusal {
            owed[index].answer = .ready(refusal)
            writeReadyAnswers(context: context)
        } else if case .publish(let channel) = receiving.target {
            owed[index].answer = .publishing
            publish(context: context, request: receiving, channel: channel)
        }
    }

    /// An allowed publish asked for `100 Continue`: sent once no earlier answer is owed.
    private func sendContinueIfDue(context: ChannelHandlerContext) {
        guard owed.isEmpty, case .receiving(var receiving) = state, receiving.continueOwed else { return }
        receiving.continueOwed = false
        state = .receiving(receiving)
        let continueHead = HTTPResponseHead(version: receiving.head.version, status: HTTPResponseWriter.status(.continue))
        context.writeAndFlush(wrapOutboundOut(.head(continueHead)), promise: nil)
    }

    // MARK: Publishing

    /// Hands the publish to the endpoints; its answer takes its place among the owed ones.
    private func publish(context: ChannelHandlerContext, request: Receiving, channel: String) {
        let id = request.id
        let promise = context.eventLoop.makePromise(of: BrokerResponse.self)
        endpoints.publish(body: (request.body ?? ByteBuffer()).readableBytesView, channel: channel, request: request.request) { response in
            promise.succeed(response)
        }
        promise.futureResult.assumeIsolated().whenSuccess { [self] response in
            guard !ended, let index = owed.firstIndex(where: { $0.id == id }) else { return }
            owed[index].answer = .ready(response)
            writeReadyAnswers(context: context, flushingSoon: true)
        }
    }

    /// Flushes once the loop has run the tasks already queued: the answers of one script call
    /// reach the loop as one task each, and leave in one write instead of one per answer.
    private func flushSoon(context: ChannelHandlerContext) {
        guard !flushQueued else { return }
        flushQueued = true
        context.eventLoop.assumeIsolated().execute { [self] in
            flushQueued = false
            context.flush()
        }
    }

    /// No request is in progress after the owed answers (a shutdown asked: the last one closes).
    private var closesWhenAnswered: Bool {
        switch state {
        case .idle, .closing: true
        case .receiving, .parked, .waiting: false
        }
    }

    /// Writes the owed answers that are ready, oldest first, up to the first that is not, with
    /// one flush: at once, or when `flushingSoon` (a publish's answer from Redis: the other
    /// answers of its script call are likely queued right behind it) after the loop's queued
    /// tasks. Then a request parked behind them goes on, or the next one is asked for.
    private func writeReadyAnswers(context: ChannelHandlerContext, flushingSoon: Bool = false) {
        var wrote = false
        while let first = owed.first, case .ready(var response) = first.answer {
            owed.removeFirst()
            owedBytes -= first.bytes
            wrote = true
            if quiesceRequested, owed.isEmpty, closesWhenAnswered { response.closeAfter = true }
            let (done, keepAlive) = HTTPResponseWriter.write(response, to: first.head, context: context, wrap: wrapOutboundOut, flush: false)
            if keepAlive {
                context.triggerUserOutboundEvent(HTTPConnectionEvent.responseEnded, promise: nil)
            } else {
                // The connection ends with this answer: nothing after it is answered.
                state = .closing
                owed.removeAll()
                owedBytes = 0
                context.flush()
                done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                return
            }
        }
        if wrote {
            if flushingSoon { flushSoon(context: context) } else { context.flush() }
        }
        sendContinueIfDue(context: context)
        if case .parked(let request) = state, mayProceed(context: context, with: request) {
            proceed(context: context, with: request)
        } else {
            askForNextRequest(context: context)
        }
    }

    // MARK: Streams

    /// Hands the connection (HTTP/1) or the HTTP/2 stream over to a stream sink: over HTTP/1
    /// the HTTP handlers leave and a `StreamConnectionHandler` writes the head and the framed
    /// events itself; over HTTP/2 the head goes out at once as HEADERS and an
    /// ``HTTP2StreamSink`` sends the events as DATA through the stream's HTTP/2 codec.
    private func becomeStream(context: ChannelHandlerContext, head: HTTPRequestHead, opening: StreamOpening) {
        let configuration = services.configuration
        let channels = opening.channels.map { ChannelName($0) }
        let sink: any StreamSinkHandler
        let replaced: HTTPPipeline.StreamReplaced?
        switch handoff {
        case .http1(let handlers, let socket):
            let preamble = opening.corsHeaders.isEmpty
                ? services.hub.preamble
                : StreamPreamble(
                    retryMilliseconds: configuration.retryMilliseconds,
                    nodeName: configuration.demo ? configuration.nodeName : nil,
                    extraHeaders: opening.corsHeaders
                )
            let isChunked = head.version.major > 1 || (head.version.major == 1 && head.version.minor >= 1)
            sink = StreamConnectionHandler(
                channels: channels,
                resumeFrom: opening.resumeFrom,
                isChunked: isChunked,
                preamble: preamble.bytes(chunked: isChunked),
                expiresAt: opening.expiresAt,
                hub: services.hub,
                clientBufferBytes: configuration.clientBufferBytes,
                socket: socket
            )
            replaced = handlers
        case .http2:
            // The head leaves as HEADERS here; only the body's opening (the node's, the same
            // for every stream) goes through the sink.
            let headers = HTTPHeaders(StreamPreamble.headers + opening.corsHeaders)
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            sink = HTTP2StreamSink(
                channels: channels,
                resumeFrom: opening.resumeFrom,
                opening: services.hub.preamble.opening,
                expiresAt: opening.expiresAt,
                hub: services.hub,
                clientBufferBytes: configuration.clientBufferBytes
            )
            replaced = nil
        }
        // Requests pipelined behind the stream, which SwiftNIO passes on as its handlers leave,
        // are never answered: the stream never ends, and its head must be the first thing sent.
        state = .closing
        context.triggerUserOutboundEvent(HTTPConnectionEvent.becameStream, promise: nil)
        let pipeline = context.pipeline.syncOperations
        do {
            replaced?.remove(from: pipeline)
            try pipeline.addHandler(sink)
            pipeline.removeHandler(context: context, promise: nil)
            if quiesceRequested { sink.finish() }
        } catch {
            services.logger.error("cannot turn a connection into a stream", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    // MARK: Responses

    /// Answers before the request ended (its body is not read) and closes the connection: at
    /// once, or after the answers owed to earlier requests.
    private func refuseEarly(context: ChannelHandlerContext, head: HTTPRequestHead, _ response: BrokerResponse) {
        state = .closing
        context.triggerUserOutboundEvent(HTTPConnectionEvent.requestEnded, promise: nil)
        var response = response
        response.closeAfter = true
        respond(context: context, to: head, response)
    }

    /// Answers the request of `head` in its place among the owed answers: at once when nothing
    /// is owed before it (every request but a publish), closing afterwards unless the request
    /// keeps the connection alive.
    private func respond(context: ChannelHandlerContext, to head: HTTPRequestHead, _ response: BrokerResponse) {
        guard !ended else { return }
        owe(Owed(id: takeRequestID(), head: head, bytes: 0, answer: .ready(response)))
        writeReadyAnswers(context: context)
    }
}

@available(*, unavailable)
extension HTTPRequestHandler: Sendable {}
