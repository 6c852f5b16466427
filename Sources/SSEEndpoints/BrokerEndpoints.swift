import Logging
import SSEAuth
import SSEPublisher
import SSERedis
import SSEWire

/// The broker's HTTP endpoints as decisions, for any host: each takes a ``BrokerRequest`` and
/// returns a ``BrokerResponse`` (or, for a stream, what to open), possibly after an access check.
///
/// No I/O and no HTTP library here: the host reads the request, asks the ``Router`` which
/// endpoint it is, asks this for the answer and writes it. Shared by every connection of a node.
package struct BrokerEndpoints: Sendable {
    package let configuration: EndpointConfiguration
    package let cors: CORSPolicy
    /// Who may publish, from the request head and the peer.
    package let publishPolicy: PublishPolicy
    package let channels: ChannelNameValidator
    package let access: AccessController
    package let backend: any EndpointBackend
    package let logger: Logger

    package init(configuration: EndpointConfiguration, access: AccessController, backend: any EndpointBackend, logger: Logger) {
        self.configuration = configuration
        self.cors = CORSPolicy(origins: configuration.corsOrigins)
        self.publishPolicy = PublishPolicy(cors: cors, cookieName: access.configuration.cookieName)
        self.channels = ChannelNameValidator(maximumBytes: configuration.maxChannelNameBytes, maximumChannels: configuration.maxChannelsPerStream)
        self.access = access
        self.backend = backend
        self.logger = logger
    }

    /// CORS headers for a response to `request`.
    package func corsHeaders(_ request: BrokerRequest) -> [(String, String)] {
        cors.headers(origin: request.headers.first(name: "origin"))
    }

    // MARK: Simple endpoints

    /// `GET /healthz`: the process answers.
    package func health() -> BrokerResponse {
        .json(.ok, ["status": "ok"])
    }

    /// `GET /readyz`: ready while the Redis subscription is up and, as far as the delivery probe
    /// knows, delivers.
    package func ready() -> BrokerResponse {
        // First: a node the probe found silent stays out of the load balancer until a probe
        // succeeds on the rebuilt subscription, even while the rebuild is still connecting.
        guard backend.isSubscriptionDelivering else {
            return .json(.serviceUnavailable, ["status": "redis subscription not delivering"])
        }
        guard backend.isSubscriptionConnected else {
            return .json(.serviceUnavailable, ["status": "redis subscription down"])
        }
        // Channels Redis refuses (an ACL) are a misconfiguration to see, not a reason to take
        // every node out of the load balancer: ready, with the count.
        let refused = backend.refusedChannelCount
        var answer: JSONObject = ["status": "ready"]
        if refused > 0 { answer["refusedChannels"] = .integer(JSONInteger(refused)) }
        return .json(.ok, answer)
    }

    /// `GET /metrics`: Prometheus text format.
    package func metrics() -> BrokerResponse {
        BrokerResponse(status: .ok, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: backend.metricsExposition())
    }

    /// `OPTIONS` on a broker resource: 204 with the preflight headers the origin may have.
    package func preflight(_ request: BrokerRequest, methods: String) -> BrokerResponse {
        BrokerResponse(status: .noContent, headers: cors.preflightHeaders(origin: request.headers.first(name: "origin"), methods: methods), body: [])
    }

    /// A refusal the router or a validation decided, with CORS headers.
    package func refusal(_ error: HTTPError, for request: BrokerRequest, closeAfter: Bool = false) -> BrokerResponse {
        .error(error, extraHeaders: corsHeaders(request), closeAfter: closeAfter)
    }

    /// A request body over `--max-payload`: 413, answered before the body is read, then close.
    package func bodyTooLarge(publish: Bool) -> BrokerResponse {
        let limit = configuration.maxPayloadBytes
        let error = HTTPError(.payloadTooLarge, "\(publish ? "publish" : "request") body larger than \(limit) bytes")
        return .error(error, closeAfter: true)
    }

    // MARK: Streams

    /// `GET /stream` (or `HEAD`): validated channels, none refused by Redis (503), access
    /// allowed when streams need a token (401/403); then what to open. `authorize`, when given,
    /// decides access instead of the broker's own rules (a host whose authentication supplies
    /// the grants).
    package func stream(
        _ request: BrokerRequest,
        authorize: (@Sendable (_ channels: [String]) async -> AccessDecision)? = nil
    ) -> AccessGated<StreamAnswer> {
        let streamChannels: [String]
        do {
            streamChannels = try channels.streamChannels(request.query)
        } catch {
            return .decided(.respond(refusal(error, for: request)))
        }
        let cors = corsHeaders(request)
        let refused = backend.refusedChannels(among: streamChannels)
        guard refused.isEmpty else {
            let error = HTTPError(.serviceUnavailable, "Redis refuses to subscribe channel \(refused[0]) (access control)")
            return .decided(.respond(.error(error, extraHeaders: cors)))
        }
        // EventSource sends Last-Event-ID on reconnect; a page that stored an id passes lastEventId.
        let resumeFrom = request.headers.first(name: "last-event-id") ?? request.query.first("lastEventId")
        func opening(expiresAt: Double?) -> StreamAnswer {
            .open(StreamOpening(
                channels: streamChannels,
                resumeFrom: resumeFrom.flatMap { $0.isEmpty ? nil : $0 },
                expiresAt: expiresAt,
                corsHeaders: cors,
                headOnly: request.method == .HEAD
            ))
        }
        let check: @Sendable () async -> AccessDecision
        if let authorize {
            check = { await authorize(streamChannels) }
        } else {
            guard access.configuration.streamsNeedToken else { return .decided(opening(expiresAt: nil)) }
            let access = self.access
            let credentials = streamCredentials(request)
            check = { await access.authorizeStream(channels: streamChannels, credentials: credentials) }
        }
        return .afterCheck(check) { decision in
            switch decision {
            case .allowed(let expiresAt): return opening(expiresAt: expiresAt)
            case .unauthenticated, .forbidden: return .respond(Self.refusal(decision, cors: cors, closeAfter: false))
            }
        }
    }

    /// A stream's credentials: `Authorization`, the cookie, or `?token=` (EventSource cannot set headers).
    package func streamCredentials(_ request: BrokerRequest) -> AccessController.Credentials {
        AccessController.Credentials(
            authorization: request.headers.first(name: "authorization"),
            cookieHeader: request.headers[canonicalForm: "cookie"].joined(separator: "; "),
            queryToken: request.query.first("token")
        )
    }

    // MARK: Publishing

    /// What `POST /publish` gets from its head alone, before any of its body.
    package enum PublishAdmission {
        /// Read the body (at most `--max-payload`) while the access check runs; `check` is
        /// decided already unless a JWT must be verified.
        case admit(channel: String, check: AccessGated<AccessDecision>)
        /// Answer when the request has ended (a bad channel).
        case refuseAtEnd(BrokerResponse)
        /// Answer now and close, unread (a declared length over `--max-payload`).
        case refuseNow(BrokerResponse)
    }

    /// Decides a publish from its head: channel, declared length, and the access check to run.
    package func admitPublish(_ request: BrokerRequest) -> PublishAdmission {
        let channel: String
        do {
            channel = try channels.publishChannel(request.query)
        } catch {
            return .refuseAtEnd(refusal(error, for: request))
        }
        if let declared = request.declaredContentLength, declared > configuration.maxPayloadBytes {
            return .refuseNow(bodyTooLarge(publish: true))
        }
        return .admit(channel: channel, check: publishCheck(request, channel: channel))
    }

    /// The access check for publishing on `channel` (a publish, or an extension's action that
    /// publishes, such as the demo's task): decided now when it needs no token verification
    /// (open publishing, the publish key), so a host answers without leaving its thread; an
    /// `async` check only when a JWT must be verified.
    package func publishCheck(_ request: BrokerRequest, channel: String) -> AccessGated<AccessDecision> {
        let access = self.access
        let credentials = publishPolicy.credentials(request)
        let refusal = publishPolicy.openPublishRefusal(request, allowAnyPeer: access.configuration.allowOpenPublish)
        if let decision = access.decidePublishNow(credentials: credentials, openPublishRefusal: refusal) { return .decided(decision) }
        return .afterCheck({ await access.authorizePublish(channel: channel, credentials: credentials, openPublishRefusal: refusal) }, then: { $0 })
    }

    /// The answer to a refused access check (401 with `WWW-Authenticate`, or 403); nil when allowed.
    /// A publish refused from its head closes the connection (its body is not read).
    package func publishRefusal(_ decision: AccessDecision, for request: BrokerRequest) -> BrokerResponse? {
        if case .allowed = decision { return nil }
        return Self.refusal(decision, cors: corsHeaders(request), closeAfter: true)
    }

    /// Runs `respond` once publishing on `channel` is allowed, or answers 401/403: the shape of
    /// an extension's endpoint that publishes (the demo's `POST /demo/task`).
    package func whenPublishAllowed(
        _ request: BrokerRequest,
        channel: String,
        respond: @escaping () -> BrokerResponse
    ) -> AccessGated<BrokerResponse> {
        let cors = corsHeaders(request)
        return publishCheck(request, channel: channel).map { decision in
            if case .allowed = decision { return respond() }
            return Self.refusal(decision, cors: cors, closeAfter: false)
        }
    }

    /// Publishes a complete `POST /publish` body on `channel`. `answer` gets the response: at
    /// once for a body that is not a publish request (400), else once Redis answered (200 with
    /// the receivers and the history id, per event in order for a batch, or 503), from the
    /// publisher's thread.
    package func publish(body: some Collection<UInt8>, channel: String, request: BrokerRequest, answer: @escaping @Sendable (BrokerResponse) -> Void) {
        let cors = corsHeaders(request)
        let parsed: PublishRequest.Body
        do {
            parsed = try PublishRequest.body(from: body)
        } catch {
            answer(.error(error, extraHeaders: cors))
            return
        }
        let logger = self.logger
        let failed: @Sendable (RedisError) -> Void = { error in
            logger.warning("publish failed", metadata: ["channel": "\(channel)", "error": "\(error)"])
            let unavailable = HTTPError(.serviceUnavailable, "publish failed: Redis is unavailable; retry shortly", headers: [("Retry-After", "1")])
            answer(.error(unavailable, extraHeaders: cors))
        }
        switch parsed {
        case .single(let message):
            backend.publish(message, channel: channel) { result in
                switch result {
                case .success(let receipt): answer(.json(.ok, Self.object(receipt), extraHeaders: cors))
                case .failure(let error): failed(error)
                }
            }
        case .batch(let messages):
            backend.publish(messages, channel: channel) { result in
                switch result {
                case .success(let receipts):
                    answer(.json(.ok, ["events": .array(receipts.map { .object(Self.object($0)) })], extraHeaders: cors))
                case .failure(let error): failed(error)
                }
            }
        }
    }

    private static func object(_ receipt: PublishReceipt) -> JSONObject {
        var object: JSONObject = ["receivers": .integer(JSONInteger(receipt.receivers))]
        if let id = receipt.id { object["id"] = .string(id) }
        return object
    }

    private static func refusal(_ decision: AccessDecision, cors: [(String, String)], closeAfter: Bool) -> BrokerResponse {
        let error: HTTPError
        switch decision {
        case .allowed:
            preconditionFailure("an allowed decision is not a refusal")
        case .unauthenticated(let message):
            error = HTTPError(.unauthorized, message, headers: [("WWW-Authenticate", #"Bearer realm="sse""#)])
        case .forbidden(let message):
            error = HTTPError(.forbidden, message)
        }
        return .error(error, extraHeaders: cors, closeAfter: closeAfter)
    }
}
