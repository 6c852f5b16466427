#if Hummingbird
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOPosix
import SSEAuth
import SSEEndpoints
import SSEHistory
import SSEPublisher
import SSERedis
import SSEStreamCore
import SSEWire
import ServiceLifecycle

/// The broker mounted in a Hummingbird 2 app: the Swift counterpart of registering Flask-SSE's
/// blueprint (`app.register_blueprint(sse, url_prefix="/stream")`).
///
/// `addRoutes(to:)` serves `GET /stream` and `POST /publish` (paths configurable) on the app's
/// router with the standalone node's bytes, history and `Last-Event-ID` resume, access rules
/// (or grants the app's own middleware supplies), CORS, limits and metrics. One `SSEBroker` per
/// process holds one Redis subscription, however many routes and streams use it. Add it to the
/// app's services: it starts the subscription when the app runs and, on a graceful shutdown,
/// ends every stream so each EventSource reconnects to another instance.
///
/// ```swift
/// let broker = try await SSEBroker(configuration: .init(redis: RedisConfiguration(url: redisURL)), logger: logger)
/// let router = Router()
/// router.get("/") { _, _ in "the app's own routes" }
/// broker.addRoutes(to: router)
/// var app = Application(router: router)
/// app.addServices(broker)
/// try await app.runService()
/// ```
public final class SSEBroker: Service, Sendable {
    /// How the mounted broker behaves; the defaults are the standalone node's.
    public struct Configuration: Sendable {
        /// Redis, history, heartbeats, `retry:`, client buffer and largest payload.
        public var stream: StreamCoreConfiguration
        /// Who may stream and publish when the app supplies no grants.
        public var access: AccessConfiguration
        /// Origins allowed cross-origin (`*` for any, without credentials).
        public var corsOrigins: [String]
        /// Longest accepted channel name, in UTF-8 bytes.
        public var maxChannelNameBytes: Int
        /// Most channels one stream may name.
        public var maxChannelsPerStream: Int

        public init(
            redis: RedisConfiguration,
            history: HistoryConfiguration = .default,
            access: AccessConfiguration = .init(),
            corsOrigins: [String] = [],
            maxChannelNameBytes: Int = 256,
            maxChannelsPerStream: Int = 64
        ) {
            self.stream = StreamCoreConfiguration(redis: redis, history: history)
            self.access = access
            self.corsOrigins = corsOrigins
            self.maxChannelNameBytes = maxChannelNameBytes
            self.maxChannelsPerStream = maxChannelsPerStream
        }
    }

    /// What the app's own authentication grants a request; nil leaves the decision to the
    /// broker's access rules (`Configuration.access`).
    public struct Grants: Sendable {
        public var channels: ChannelGrants
        /// When the grant ends (Unix seconds); a stream ends then.
        public var expiresAt: Double?

        public init(_ channels: ChannelGrants, expiresAt: Double? = nil) {
            self.channels = channels
            self.expiresAt = expiresAt
        }
    }

    public let configuration: Configuration
    /// The stream side: the Redis subscription, history, fan-out.
    public let core: StreamCore
    /// Publishes as `POST /publish` does (with history ids), for the app's own routes.
    public let publisher: SSEPublisher
    private let endpoints: BrokerEndpoints
    private let logger: Logger

    /// Sets up the broker with its streams on `eventLoopGroup` (the app's, or NIO's shared one);
    /// nothing connects to Redis until the broker runs. Metrics go to `metricsFactory` (the
    /// process-wide one by default, so the app's `/metrics` shows them). Throws for an unusable key.
    public init(
        configuration: Configuration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        logger: Logger
    ) async throws {
        self.configuration = configuration
        self.logger = logger
        let core = try StreamCore(configuration: configuration.stream, group: eventLoopGroup, metricsFactory: metricsFactory, logger: logger)
        let publisher = SSEPublisher(
            redis: configuration.stream.redis,
            history: configuration.stream.history,
            logger: logger,
            watermark: core.watermark
        )
        let access = try await AccessController(configuration: configuration.access)
        self.core = core
        self.publisher = publisher
        self.endpoints = BrokerEndpoints(
            configuration: EndpointConfiguration(
                maxPayloadBytes: configuration.stream.maxPayloadBytes,
                maxChannelNameBytes: configuration.maxChannelNameBytes,
                maxChannelsPerStream: configuration.maxChannelsPerStream,
                corsOrigins: configuration.corsOrigins
            ),
            access: access,
            backend: StreamCoreBackend(core: core, publisher: publisher),
            logger: logger
        )
    }

    /// Whether the Redis subscription is up and, as far as the delivery probe knows, delivers
    /// (for the app's readiness check).
    public var isReady: Bool { core.isSubscriptionConnected && core.isSubscriptionDelivering }

    // MARK: Service

    /// Starts the subscription; on a graceful shutdown ends every stream, then stops the Redis
    /// threads. Streams opened meanwhile are served; after the shutdown began, they end at once.
    public func run() async throws {
        core.start()
        try? await gracefulShutdown()
        core.endAllStreams()
        await core.shutdown()
        publisher.shutdown()
    }

    // MARK: Routes

    /// Adds `GET`/`HEAD streamPath`, `POST publishPath` and their CORS preflights to `router`.
    ///
    /// - Parameter grants: what the app's own authentication (a middleware that put it on the
    ///   context) grants the request; return nil to let the broker's access rules decide.
    public func addRoutes<Context: RequestContext>(
        to router: some RouterMethods<Context>,
        streamPath: RouterPath = "/stream",
        publishPath: RouterPath = "/publish",
        grants: (@Sendable (Request, Context) -> Grants?)? = nil
    ) {
        router.get(streamPath) { [self] request, context in
            await stream(request, context: context, grants: grants)
        }
        router.head(streamPath) { [self] request, context in
            await stream(request, context: context, grants: grants)
        }
        router.on(streamPath, method: .options) { [self] request, context in
            Self.response(endpoints.preflight(Self.brokerRequest(request, context: context), methods: "GET, HEAD, OPTIONS"))
        }
        router.post(publishPath) { [self] request, context in
            await publish(request, context: context, grants: grants)
        }
        router.on(publishPath, method: .options) { [self] request, context in
            Self.response(endpoints.preflight(Self.brokerRequest(request, context: context), methods: "POST, OPTIONS"))
        }
    }

    private func stream<Context: RequestContext>(
        _ request: Request,
        context: Context,
        grants: (@Sendable (Request, Context) -> Grants?)?
    ) async -> Response {
        let brokerRequest = Self.brokerRequest(request, context: context)
        let supplied = grants?(request, context)
        let authorize: (@Sendable ([String]) async -> AccessDecision)? = supplied.map { supplied in
            { @Sendable channels in supplied.channels.decideStream(channels: channels, expiresAt: supplied.expiresAt) }
        }
        switch await endpoints.stream(brokerRequest, authorize: authorize).value() {
        case .respond(let answer):
            return Self.response(answer)
        case .open(let opening):
            let headers = Self.fields(StreamPreamble.headers + opening.corsHeaders)
            if opening.headOnly { return Response(status: .ok, headers: headers) }
            let loop = core.group.next()
            let core = self.core
            let bufferBytes = configuration.stream.clientBufferBytes
            let opened = loop.submit { () -> (BoundedStreamSink.Chunks, NIOLoopBound<StreamClient>) in
                let (sink, chunks) = BoundedStreamSink.makeSink(on: loop, clientBufferBytes: bufferBytes)
                let client = core.makeStream(
                    channels: opening.channels.map { ChannelName($0) },
                    resumeFrom: opening.resumeFrom,
                    expiresAt: opening.expiresAt,
                    sink: sink,
                    on: loop
                )
                sink.owner = client
                client.start()
                return (chunks, NIOLoopBound(client, eventLoop: loop))
            }
            guard let (chunks, client) = try? await opened.get() else {
                return Self.response(.error(HTTPError(.serviceUnavailable, "the broker is shutting down")))
            }
            return Response(
                status: .ok,
                headers: headers,
                body: ResponseBody(draining: chunks, whileConnected: request) {
                    // The app is shutting down: end the stream cleanly, so the server's drain
                    // is not held by it and the EventSource reconnects elsewhere.
                    loop.execute { client.value.finish() }
                }
            )
        }
    }

    private func publish<Context: RequestContext>(
        _ request: Request,
        context: Context,
        grants: (@Sendable (Request, Context) -> Grants?)?
    ) async -> Response {
        let brokerRequest = Self.brokerRequest(request, context: context)
        switch endpoints.admitPublish(brokerRequest) {
        case .refuseNow(let answer), .refuseAtEnd(let answer):
            return Self.response(answer)
        case .admit(let channel, let check):
            let decision = if let supplied = grants?(request, context) {
                supplied.channels.decidePublish(channel: channel)
            } else {
                await check.value()
            }
            if let refusal = endpoints.publishRefusal(decision, for: brokerRequest) { return Self.response(refusal) }
            var request = request
            let body: ByteBuffer
            do {
                body = try await request.collectBody(upTo: configuration.stream.maxPayloadBytes)
            } catch {
                return Self.response(endpoints.bodyTooLarge(publish: true))
            }
            let endpoints = self.endpoints
            let answer = await withCheckedContinuation { (continuation: CheckedContinuation<BrokerResponse, Never>) in
                endpoints.publish(body: body.readableBytesView, channel: channel, request: brokerRequest) { continuation.resume(returning: $0) }
            }
            return Self.response(answer)
        }
    }

    // MARK: Conversions

    /// The host-neutral request: method and target as sent, every header field in order, and
    /// the peer when the context knows it (`RemoteAddressRequestContext`): without it, open
    /// publishing (no credentials configured) is refused, since loopback cannot be proven.
    static func brokerRequest<Context: RequestContext>(_ request: Request, context: Context) -> BrokerRequest {
        let peer = (context as? any RemoteAddressRequestContext)?.remoteAddress
        // HTTPTypes keeps `Host` as the `:authority` pseudo-header, apart from the fields.
        var fields = request.head.authority.map { [(name: "Host", value: $0)] } ?? []
        fields += request.headers.map { (name: $0.name.rawName, value: $0.value) }
        return BrokerRequest(
            method: HTTPRequestMethod(rawValue: request.method.rawValue),
            target: request.uri.string,
            headers: RequestHeaders(fields),
            peer: peer
        )
    }

    static func fields(_ pairs: [(String, String)]) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in pairs {
            guard let field = HTTPField.Name(name) else { continue }
            fields.append(HTTPField(name: field, value: value))
        }
        return fields
    }

    static func response(_ answer: BrokerResponse) -> Response {
        var headers = fields(answer.headers)
        if answer.closeAfter { headers[.connection] = "close" }
        let status = HTTPResponse.Status(code: answer.status.code, reasonPhrase: answer.status.reasonPhrase)
        guard let body = answer.body else { return Response(status: status, headers: headers) }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}
#endif
