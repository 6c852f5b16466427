import Logging
import NIOCore
import NIOHTTP1
import SSEStreamCore
import SSEAuth
import SSEPublisher
import SSERedis
import SSEWire

/// Routes one HTTP/1.x request at a time (NIO's pipelining handler orders them) and answers it.
///
/// `GET /stream` turns the connection into an event stream: the HTTP handlers leave the
/// pipeline and a `StreamConnectionHandler` takes over. `POST /publish` is authorized from its
/// head while its body arrives (a refused one is answered 401/403 and closed without waiting
/// for the body; `Expect: 100-continue` is answered only once the head is allowed), then hands
/// the payload to the publisher's Redis thread and answers when Redis has, without blocking
/// the loop. With auth configured, streams wait for the access decision first (401 or 403
/// with a JSON body). ``RequestTimeoutHandler`` is told when a request ends, when a response
/// ends and when the connection becomes a stream.
final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Route {
        case stream(channels: [String])
        case publish(channel: String)
        case preflight(methods: String)
        case health
        case ready
        case metrics
        case demoPage
        case demoTask
        case refuse(HTTPError)
    }

    /// Where a publish's access decision, started at its head, stands.
    private enum PublishCheck {
        case pending
        case allowed
    }

    /// The request whose head arrived and whose end has not.
    private struct Receiving {
        let head: HTTPRequestHead
        let route: Route
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
        case awaitingPublishCheck(HTTPRequestHead, channel: String, body: ByteBuffer)
        /// An answer went out before the request ended (body too large, publish refused); the
        /// connection closes.
        case closing
        /// Waiting for an access decision or for Redis to answer a publish.
        case waiting
    }

    private let services: BrokerServices
    /// The connection's socket, for a stream's direct writes.
    private let socket: Int32
    private var state = State.idle
    /// A graceful shutdown asked this connection to finish.
    private var quiesceRequested = false
    /// The connection is over for this handler: a protocol error was answered by
    /// `HTTPProtocolErrorResponder`, or the connection broke or closed. An access decision or a
    /// publish that completes later must not answer again (a second response to one request).
    private var ended = false

    init(services: BrokerServices, socket: Int32) {
        self.services = services
        self.socket = socket
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .idle):
            var request = Receiving(head: head, route: route(head))
            if case .publish(let channel) = request.route {
                if let declared = head.headers.first(name: "content-length").map({ Int($0) ?? Int.max }),
                    declared > services.configuration.maxPayloadBytes
                {
                    refuseEarly(context: context, head: head, payloadTooLarge())
                    return
                }
                request.body = context.channel.allocator.buffer(capacity: 0)
                request.publishCheck = .pending
                state = .receiving(request)
                checkPublish(context: context, head: head, channel: channel)
            } else {
                state = .receiving(request)
            }
        case (.body(var chunk), .receiving(var request)):
            let limit = services.configuration.maxPayloadBytes
            if var body = request.body {
                guard body.readableBytes + chunk.readableBytes <= limit else {
                    refuseEarly(context: context, head: request.head, payloadTooLarge())
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
                    refuseEarly(context: context, head: request.head, HTTPError(.payloadTooLarge, "request body larger than \(limit) bytes"))
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

    /// A request that ended: published, waiting for its publish check, or dispatched.
    private func proceed(context: ChannelHandlerContext, with request: Receiving) {
        switch (request.route, request.publishCheck) {
        case (.publish(let channel), .pending?):
            state = .awaitingPublishCheck(request.head, channel: channel, body: request.body ?? ByteBuffer())
        case (.publish(let channel), .allowed?):
            state = .idle
            publish(context: context, request: request.head, channel: channel, body: request.body ?? ByteBuffer(), cors: cors(request.head))
        default:
            state = .idle
            dispatch(context: context, head: request.head, route: request.route)
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

    private func payloadTooLarge() -> HTTPError {
        HTTPError(.payloadTooLarge, "publish body larger than \(services.configuration.maxPayloadBytes) bytes")
    }

    private func route(_ head: HTTPRequestHead) -> Route {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let query = QueryParameters(uri: head.uri)
        switch (path, head.method) {
        case ("/stream", .GET), ("/stream", .HEAD):
            do {
                return .stream(channels: try services.channels.streamChannels(query))
            } catch {
                return .refuse(error)
            }
        case ("/stream", .OPTIONS):
            return .preflight(methods: "GET, HEAD, OPTIONS")
        case ("/stream", _):
            return .refuse(.methodNotAllowed(head.method, allowed: [.GET, .HEAD, .OPTIONS]))
        case ("/publish", .POST):
            do {
                return .publish(channel: try services.channels.publishChannel(query))
            } catch {
                return .refuse(error)
            }
        case ("/publish", .OPTIONS):
            return .preflight(methods: "POST, OPTIONS")
        case ("/publish", _):
            return .refuse(.methodNotAllowed(head.method, allowed: [.POST, .OPTIONS]))
        case ("/healthz", .GET), ("/healthz", .HEAD):
            return .health
        case ("/readyz", .GET), ("/readyz", .HEAD):
            return .ready
        case ("/metrics", .GET):
            return .metrics
        case ("/", .GET) where services.demo != nil, ("/", .HEAD) where services.demo != nil:
            return .demoPage
        case ("/demo/task", .POST) where services.demo != nil:
            return .demoTask
        case ("/healthz", _), ("/readyz", _):
            return .refuse(.methodNotAllowed(head.method, allowed: [.GET, .HEAD]))
        case ("/metrics", _):
            return .refuse(.methodNotAllowed(head.method, allowed: [.GET]))
        default:
            return .refuse(HTTPError(.notFound, "no such endpoint: \(path)"))
        }
    }

    private func cors(_ head: HTTPRequestHead) -> [(String, String)] {
        services.cors.headers(origin: head.headers.first(name: "origin"))
    }

    private func dispatch(context: ChannelHandlerContext, head: HTTPRequestHead, route: Route) {
        let cors = cors(head)
        switch route {
        case .health:
            respond(context: context, request: head, status: .ok, json: ["status": "ok"])
        case .ready:
            if services.hub.subscriber.isConnected {
                // Channels Redis refuses (an ACL) are a misconfiguration to see, not a reason to
                // take every node out of the load balancer: ready, with the count.
                let refused = services.hub.refusedChannelCount
                var answer: JSONObject = ["status": "ready"]
                if refused > 0 { answer["refusedChannels"] = .integer(JSONInteger(refused)) }
                respond(context: context, request: head, status: .ok, json: answer)
            } else {
                respond(context: context, request: head, status: .serviceUnavailable, json: ["status": "redis subscription down"])
            }
        case .metrics:
            let headers = HTTPHeaders([("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])
            finishResponse(
                context: context,
                request: head,
                head: HTTPResponseHead(version: head.version, status: .ok, headers: headers),
                body: services.prometheus.exposition()
            )
        case .demoPage:
            let headers = HTTPHeaders([("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-cache")])
            finishResponse(
                context: context,
                request: head,
                head: HTTPResponseHead(version: head.version, status: .ok, headers: headers),
                body: Array(DemoPage.html.utf8)
            )
        case .demoTask:
            guard let demo = services.demo else { return }
            let refusal = openPublishRefusal(context: context, head: head)
            let credentials = services.publishPolicy.credentials(head)
            authorize(context: context, request: head, cors: cors, check: { access, _ in
                await access.authorizePublish(channel: "demo.task", credentials: credentials, openPublishRefusal: refusal)
            }, fastPath: false) { [self] _ in
                guard let task = demo.startTask() else {
                    let busy = HTTPError(.tooManyRequests, "\(demo.maxTasks) demo tasks are already running; retry shortly", headers: [("Retry-After", "5")])
                    respond(context: context, request: head, error: busy, extraHeaders: cors)
                    return
                }
                respond(context: context, request: head, status: .ok, json: ["task": .string(task)], extraHeaders: cors)
            }
        case .preflight(let methods):
            let headers = HTTPHeaders(services.cors.preflightHeaders(origin: head.headers.first(name: "origin"), methods: methods))
            finishResponse(context: context, request: head, head: HTTPResponseHead(version: head.version, status: .noContent, headers: headers), body: [])
        case .refuse(let error):
            respond(context: context, request: head, error: error, extraHeaders: cors)
        case .stream(let channels):
            let refused = services.hub.refusedChannels(among: channels)
            guard refused.isEmpty else {
                let error = HTTPError(.serviceUnavailable, "Redis refuses to subscribe channel \(refused[0]) (access control)")
                respond(context: context, request: head, error: error, extraHeaders: cors)
                return
            }
            authorize(context: context, request: head, cors: cors, check: { access, credentials in
                await access.authorizeStream(channels: channels, credentials: credentials)
            }, fastPath: !services.access.configuration.streamsNeedToken) { [self] expiresAt in
                if head.method == .HEAD {
                    respondToStreamHead(context: context, request: head, cors: cors)
                } else {
                    becomeStream(context: context, request: head, channels: channels, cors: cors, expiresAt: expiresAt)
                }
            }
        case .publish:
            // Publishes are decided from their head, in `channelRead`.
            preconditionFailure("a publish is dispatched from its access check")
        }
    }

    // MARK: Access

    /// A stream's credentials: `Authorization`, the cookie, or `?token=` (EventSource cannot set headers).
    private func credentials(_ head: HTTPRequestHead) -> AccessController.Credentials {
        AccessController.Credentials(
            authorization: head.headers.first(name: "authorization"),
            cookieHeader: head.headers[canonicalForm: "cookie"].joined(separator: "; "),
            queryToken: QueryParameters(uri: head.uri).first("token")
        )
    }

    private func openPublishRefusal(context: ChannelHandlerContext, head: HTTPRequestHead) -> String? {
        services.publishPolicy.openPublishRefusal(
            head,
            peer: context.channel.remoteAddress,
            allowAnyPeer: services.access.configuration.allowOpenPublish
        )
    }

    /// Starts a publish's access decision from its head alone. Allowed: an `Expect:
    /// 100-continue` gets its `100 Continue`, and the publish goes out once the body is here.
    /// Refused: 401/403 with `Connection: close` at once, whatever of the body has arrived.
    private func checkPublish(context: ChannelHandlerContext, head: HTTPRequestHead, channel: String) {
        let access = services.access
        let credentials = services.publishPolicy.credentials(head)
        let refusal = openPublishRefusal(context: context, head: head)
        let promise = context.eventLoop.makePromise(of: AccessDecision.self)
        promise.completeWithTask {
            await access.authorizePublish(channel: channel, credentials: credentials, openPublishRefusal: refusal)
        }
        promise.futureResult.assumeIsolated().whenSuccess { [self] decision in
            guard !ended else { return }
            let refusal: HTTPError
            switch decision {
            case .allowed:
                switch state {
                case .parked(var request):
                    request.publishCheck = .allowed
                    state = .parked(request)
                case .receiving(var request):
                    request.publishCheck = .allowed
                    state = .receiving(request)
                    if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
                    }
                case .awaitingPublishCheck(let head, let channel, let body):
                    state = .idle
                    publish(context: context, request: head, channel: channel, body: body, cors: cors(head))
                case .idle, .closing, .waiting:
                    break  // answered already (413, say) or closed
                }
                return
            case .unauthenticated(let message):
                refusal = HTTPError(.unauthorized, message, headers: [("WWW-Authenticate", #"Bearer realm="sse""#)])
            case .forbidden(let message):
                refusal = HTTPError(.forbidden, message)
            }
            switch state {
            case .receiving, .awaitingPublishCheck, .parked:
                refuseEarly(context: context, head: head, refusal, extraHeaders: cors(head))
            case .idle, .closing, .waiting:
                break
            }
        }
    }

    /// Runs the access check (off the loop: jwt-kit's key collection is an actor), then either
    /// continues on the loop or answers 401/403.
    private func authorize(
        context: ChannelHandlerContext,
        request: HTTPRequestHead,
        cors: [(String, String)],
        check: @escaping @Sendable (AccessController, AccessController.Credentials) async -> AccessDecision,
        fastPath: Bool,
        then proceed: @escaping (Double?) -> Void
    ) {
        if fastPath {
            proceed(nil)
            return
        }
        state = .waiting
        let access = services.access
        let credentials = credentials(request)
        let promise = context.eventLoop.makePromise(of: AccessDecision.self)
        promise.completeWithTask { await check(access, credentials) }
        promise.futureResult.assumeIsolated().whenSuccess { [self] decision in
            guard !ended else { return }
            state = .idle
            switch decision {
            case .allowed(let expiresAt):
                proceed(expiresAt)
            case .unauthenticated(let message):
                respond(
                    context: context,
                    request: request,
                    error: HTTPError(.unauthorized, message, headers: [("WWW-Authenticate", #"Bearer realm="sse""#)]),
                    extraHeaders: cors
                )
            case .forbidden(let message):
                respond(context: context, request: request, error: HTTPError(.forbidden, message), extraHeaders: cors)
            }
        }
    }

    // MARK: Publishing

    private func publish(context: ChannelHandlerContext, request: HTTPRequestHead, channel: String, body: ByteBuffer, cors: [(String, String)]) {
        let message: FlaskSSEMessage
        do {
            message = try PublishRequest.message(from: body.readableBytesView)
        } catch {
            respond(context: context, request: request, error: error, extraHeaders: cors)
            return
        }
        state = .waiting
        let promise = context.eventLoop.makePromise(of: PublishReceipt.self)
        services.publisher.publish(message, channel: channel) { result in
            promise.completeWith(result.mapError { $0 as any Error })
        }
        promise.futureResult.assumeIsolated().whenComplete { [self] result in
            state = .idle
            switch result {
            case .success(let receipt):
                services.metrics.publishes.increment()
                var answer: JSONObject = ["receivers": .integer(JSONInteger(receipt.receivers))]
                if let id = receipt.id { answer["id"] = .string(id) }
                respond(context: context, request: request, status: .ok, json: answer, extraHeaders: cors)
            case .failure(let error):
                services.metrics.publishErrors.increment()
                services.logger.warning("publish failed", metadata: ["channel": "\(channel)", "error": "\(error)"])
                respond(
                    context: context,
                    request: request,
                    error: HTTPError(.serviceUnavailable, "publish failed: Redis is unavailable; retry shortly", headers: [("Retry-After", "1")]),
                    extraHeaders: cors
                )
            }
        }
    }

    // MARK: Streams

    private func respondToStreamHead(context: ChannelHandlerContext, request: HTTPRequestHead, cors: [(String, String)]) {
        var headers = HTTPHeaders(StreamPreamble.headers + cors)
        headers.add(name: "Transfer-Encoding", value: "chunked")
        finishResponse(context: context, request: request, head: HTTPResponseHead(version: request.version, status: .ok, headers: headers), body: nil)
    }

    /// Replaces the HTTP handlers with a `StreamConnectionHandler`, which writes the head itself.
    private func becomeStream(
        context: ChannelHandlerContext,
        request: HTTPRequestHead,
        channels: [String],
        cors: [(String, String)],
        expiresAt: Double?
    ) {
        let isChunked = request.version.major > 1 || (request.version.major == 1 && request.version.minor >= 1)
        // EventSource sends Last-Event-ID on reconnect; a page that stored an id passes lastEventId.
        let resumeFrom = request.headers.first(name: "last-event-id") ?? QueryParameters(uri: request.uri).first("lastEventId")
        let preamble = cors.isEmpty
            ? services.hub.preamble
            : StreamPreamble(
                retryMilliseconds: services.configuration.retryMilliseconds,
                nodeName: services.configuration.demo ? services.configuration.nodeName : nil,
                extraHeaders: cors
            )
        let stream = StreamConnectionHandler(
            channels: channels.map { ChannelName($0) },
            resumeFrom: resumeFrom.flatMap { $0.isEmpty ? nil : $0 },
            isChunked: isChunked,
            preamble: preamble.bytes(chunked: isChunked),
            expiresAt: expiresAt,
            hub: services.hub,
            clientBufferBytes: services.configuration.clientBufferBytes,
            socket: socket
        )
        // Requests pipelined behind the stream, which SwiftNIO passes on as its handlers leave,
        // are never answered: the stream never ends, and its head must be the first thing sent.
        state = .closing
        context.triggerUserOutboundEvent(HTTPConnectionEvent.becameStream, promise: nil)
        let pipeline = context.pipeline.syncOperations
        do {
            try removeHandler(HTTPServerPipelineHandler.self, from: pipeline)
            try removeHandler(BackPressureHandler.self, from: pipeline)
            try removeHandler(HTTPProtocolErrorResponder.self, from: pipeline)
            try removeHandler(NIOHTTPResponseHeadersValidator.self, from: pipeline)
            try removeHandler(HTTPResponseEncoder.self, from: pipeline)
            try removeHandler(ByteToMessageHandler<HTTPRequestDecoder>.self, from: pipeline)
            try pipeline.addHandler(stream)
            pipeline.removeHandler(context: context, promise: nil)
            if quiesceRequested { stream.finish() }
        } catch {
            services.logger.error("cannot turn a connection into a stream", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    private func removeHandler<Handler: RemovableChannelHandler>(
        _ type: Handler.Type,
        from pipeline: ChannelPipeline.SynchronousOperations
    ) throws {
        let handler = try pipeline.handler(type: type)
        pipeline.removeHandler(handler, promise: nil)
    }

    // MARK: Responses

    /// Answers before the request ended (its body is not read) and closes the connection.
    private func refuseEarly(context: ChannelHandlerContext, head: HTTPRequestHead, _ error: HTTPError, extraHeaders: [(String, String)] = []) {
        state = .closing
        context.triggerUserOutboundEvent(HTTPConnectionEvent.requestEnded, promise: nil)
        var head = head
        head.headers.replaceOrAdd(name: "connection", value: "close")
        respond(context: context, request: head, error: error, extraHeaders: extraHeaders)
    }

    private func respond(context: ChannelHandlerContext, request: HTTPRequestHead, error: HTTPError, extraHeaders: [(String, String)] = []) {
        var headers = HTTPHeaders(error.headers + extraHeaders)
        headers.add(name: "Content-Type", value: "application/json")
        finishResponse(
            context: context,
            request: request,
            head: HTTPResponseHead(version: request.version, status: error.status, headers: headers),
            body: error.body
        )
    }

    private func respond(
        context: ChannelHandlerContext,
        request: HTTPRequestHead,
        status: HTTPResponseStatus,
        json: JSONObject,
        extraHeaders: [(String, String)] = []
    ) {
        let headers = HTTPHeaders([("Content-Type", "application/json")] + extraHeaders)
        finishResponse(
            context: context,
            request: request,
            head: HTTPResponseHead(version: request.version, status: status, headers: headers),
            body: PythonJSONEncoder.encode(.object(json))
        )
    }

    /// Writes a complete response, closing afterwards unless the request keeps the connection alive.
    private func finishResponse(context: ChannelHandlerContext, request: HTTPRequestHead, head: HTTPResponseHead, body: [UInt8]?) {
        guard !ended else { return }
        var head = head
        let keepAlive = request.isKeepAlive && head.headers.first(name: "connection")?.lowercased() != "close"
        if let body, head.status != .noContent { head.headers.replaceOrAdd(name: "Content-Length", value: String(body.count)) }
        head.headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body, !body.isEmpty, request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if keepAlive {
            context.triggerUserOutboundEvent(HTTPConnectionEvent.responseEnded, promise: nil)
        } else {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}
