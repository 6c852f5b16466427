import Logging
import NIOCore
import SSEAuth
import SSEPublisher
import SSERedis
import SSEWire
import Synchronization
import Testing

@testable import SSEEndpoints

/// A node's facts as plain values, and a publisher that answers with `publishResult`.
final class FixedBackend: EndpointBackend {
    let isSubscriptionConnected: Bool
    let isSubscriptionDelivering: Bool
    let refused: [String]
    let publishResult: Result<PublishReceipt, RedisError>
    let published = Mutex<[(String, [UInt8])]>([])

    init(
        isSubscriptionConnected: Bool = true,
        isSubscriptionDelivering: Bool = true,
        refused: [String] = [],
        publishResult: Result<PublishReceipt, RedisError> = .success(PublishReceipt(receivers: 2, id: "1-5"))
    ) {
        self.isSubscriptionConnected = isSubscriptionConnected
        self.isSubscriptionDelivering = isSubscriptionDelivering
        self.refused = refused
        self.publishResult = publishResult
    }

    var refusedChannelCount: Int { refused.count }
    func refusedChannels(among channels: [String]) -> [String] { channels.filter(refused.contains) }
    func metricsExposition() -> [UInt8] { Array("sse_connected_clients 0\n".utf8) }
    func publish(_ message: FlaskSSEMessage, channel: String, completion: @escaping @Sendable (Result<PublishReceipt, RedisError>) -> Void) {
        published.withLock { $0.append((channel, message.redisPayload)) }
        completion(publishResult)
    }
    func publish(_ messages: [FlaskSSEMessage], channel: String, completion: @escaping @Sendable (Result<[PublishReceipt], RedisError>) -> Void) {
        published.withLock { list in list += messages.map { (channel, $0.redisPayload) } }
        completion(publishResult.map { receipt in messages.indices.map { PublishReceipt(receivers: receipt.receivers, id: "\(receipt.id ?? "")/\($0)") } })
    }
}

@Suite("Broker endpoints")
struct BrokerEndpointsTests {
    static func endpoints(
        access: AccessConfiguration = AccessConfiguration(),
        cors: [String] = [],
        backend: FixedBackend = FixedBackend()
    ) async throws -> BrokerEndpoints {
        BrokerEndpoints(
            configuration: EndpointConfiguration(maxPayloadBytes: 100, maxChannelNameBytes: 16, maxChannelsPerStream: 2, corsOrigins: cors),
            access: try await AccessController(configuration: access),
            backend: backend,
            logger: Logger(label: "test.endpoints")
        )
    }

    static func request(_ method: HTTPRequestMethod = .GET, _ target: String, _ headers: [(String, String)] = [], peer: String? = "127.0.0.1") -> BrokerRequest {
        BrokerRequest(
            method: method,
            target: target,
            headers: RequestHeaders(headers.map { (name: $0.0, value: $0.1) }),
            peer: peer.flatMap { try? SocketAddress(ipAddress: $0, port: 40000) }
        )
    }

    static func text(_ response: BrokerResponse) -> String {
        String(decoding: response.body ?? [], as: UTF8.self)
    }

    static let secret = "endpoint-test-secret-endpoint-test-secret"

    @Test("health, ready (with refused channels, or down, or not delivering), metrics")
    func simple() async throws {
        let endpoints = try await Self.endpoints(backend: FixedBackend(refused: ["x"]))
        #expect(Self.text(endpoints.health()) == #"{"status": "ok"}"#)
        #expect(Self.text(endpoints.ready()) == #"{"refusedChannels": 1, "status": "ready"}"#)
        let down = try await Self.endpoints(backend: FixedBackend(isSubscriptionConnected: false))
        #expect(down.ready().status == .serviceUnavailable)
        #expect(Self.text(down.ready()) == #"{"status": "redis subscription down"}"#)
        for connected in [true, false] {
            let silent = try await Self.endpoints(backend: FixedBackend(isSubscriptionConnected: connected, isSubscriptionDelivering: false))
            #expect(silent.ready().status == .serviceUnavailable)
            #expect(Self.text(silent.ready()) == #"{"status": "redis subscription not delivering"}"#)
        }
        let metrics = endpoints.metrics()
        #expect(metrics.headers.map(\.0) == ["Content-Type"])
        #expect(Self.text(metrics) == "sse_connected_clients 0\n")
    }

    @Test("a stream opens with its validated channels, resume id and CORS headers; HEAD opens nothing")
    func streamOpens() async throws {
        let endpoints = try await Self.endpoints(cors: ["https://app.example"])
        let request = Self.request(.GET, "/stream?channel=a&channel=b&channel=a&lastEventId=1-2", [("Origin", "https://app.example"), ("Last-Event-ID", "3-4")])
        guard case .open(let opening) = await endpoints.stream(request).value() else { Issue.record("not opened"); return }
        #expect(opening.channels == ["a", "b"])
        #expect(opening.resumeFrom == "3-4")
        #expect(opening.expiresAt == nil)
        #expect(!opening.headOnly)
        #expect(opening.corsHeaders.map(\.0) == ["Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Vary"])
        guard case .open(let head) = await endpoints.stream(Self.request(.HEAD, "/stream?lastEventId=")).value() else { Issue.record("not opened"); return }
        #expect(head.channels == ["sse"])
        #expect(head.resumeFrom == nil)
        #expect(head.headOnly)
    }

    @Test("a stream is refused: bad channels 400, channels Redis refuses 503, without a token 401, a token for other channels 403")
    func streamRefused() async throws {
        func refusal(_ endpoints: BrokerEndpoints, _ target: String) async -> BrokerResponse? {
            if case .respond(let response) = await endpoints.stream(Self.request(.GET, target)).value() { return response }
            return nil
        }
        let endpoints = try await Self.endpoints(backend: FixedBackend(refused: ["secret"]))
        #expect(await refusal(endpoints, "/stream?channel=a&channel=b&channel=c").map(Self.text) == #"{"error": "a stream may name at most 2 channels"}"#)
        #expect(await refusal(endpoints, "/stream?channel=%01")?.status == .badRequest)
        let refused = await refusal(endpoints, "/stream?channel=secret")
        #expect(refused?.status == .serviceUnavailable)
        #expect(refused.map(Self.text) == #"{"error": "Redis refuses to subscribe channel secret (access control)"}"#)

        let keyed = try await Self.endpoints(access: AccessConfiguration(tokenKey: .hmacSecret(Self.secret)))
        guard case .afterCheck = keyed.stream(Self.request(.GET, "/stream")) else { Issue.record("no access check"); return }
        let unauthenticated = await refusal(keyed, "/stream")
        #expect(unauthenticated?.status == .unauthorized)
        #expect(unauthenticated?.headers.first { $0.0 == "WWW-Authenticate" }?.1 == #"Bearer realm="sse""#)
        #expect(unauthenticated?.closeAfter == false)
    }

    @Test("streams without a token configured are decided at once, with no access check")
    func streamFastPath() async throws {
        let endpoints = try await Self.endpoints(access: AccessConfiguration(publishKey: "k"))
        guard case .decided(.open) = endpoints.stream(Self.request(.GET, "/stream")) else {
            Issue.record("not decided at once")
            return
        }
    }

    @Test("a publish from its head: bad channel at the end, a declared length over the limit at once (413, close), else its check")
    func publishAdmission() async throws {
        let endpoints = try await Self.endpoints(access: AccessConfiguration(publishKey: "k"))
        guard case .refuseAtEnd(let bad) = endpoints.admitPublish(Self.request(.POST, "/publish?channel=%7F")) else { Issue.record("admitted"); return }
        #expect(bad.status == .badRequest)
        #expect(!bad.closeAfter)
        guard case .refuseNow(let large) = endpoints.admitPublish(Self.request(.POST, "/publish", [("Content-Length", "101")])) else {
            Issue.record("admitted")
            return
        }
        #expect(large.status == .payloadTooLarge)
        #expect(large.closeAfter)
        #expect(Self.text(large) == #"{"error": "publish body larger than 100 bytes"}"#)
        guard case .admit(let channel, let check) = endpoints.admitPublish(Self.request(.POST, "/publish?channel=c", [("Content-Length", "100")])) else {
            Issue.record("refused")
            return
        }
        #expect(channel == "c")
        let decision = await check.value()
        let refusal = endpoints.publishRefusal(decision, for: Self.request(.POST, "/publish"))
        #expect(refusal?.status == .unauthorized)
        #expect(refusal?.closeAfter == true)
        guard case .admit(_, let allowed) = endpoints.admitPublish(Self.request(.POST, "/publish", [("Authorization", "Bearer k")])) else {
            Issue.record("refused")
            return
        }
        #expect(endpoints.publishRefusal(await allowed.value(), for: Self.request(.POST, "/publish")) == nil)
    }

    @Test("open publish is for loopback peers only: 403 for another peer")
    func openPublishPeer() async throws {
        let endpoints = try await Self.endpoints()
        guard case .admit(_, let check) = endpoints.admitPublish(Self.request(.POST, "/publish", [("Host", "localhost")], peer: "192.0.2.1")) else {
            Issue.record("refused")
            return
        }
        #expect(endpoints.publishRefusal(await check.value(), for: Self.request(.POST, "/publish"))?.status == .forbidden)
        guard case .admit(_, let local) = endpoints.admitPublish(Self.request(.POST, "/publish", [("Host", "localhost")])) else {
            Issue.record("refused")
            return
        }
        #expect(endpoints.publishRefusal(await local.value(), for: Self.request(.POST, "/publish")) == nil)
    }

    @Test("a publish body: 400 for what is not a publish request; else Redis's answer, 200 with receivers and id, or 503")
    func publishBody() async throws {
        func answer(_ endpoints: BrokerEndpoints, _ body: String) async -> BrokerResponse {
            await withCheckedContinuation { continuation in
                endpoints.publish(body: Array(body.utf8), channel: "c", request: Self.request(.POST, "/publish")) { continuation.resume(returning: $0) }
            }
        }
        let backend = FixedBackend()
        let endpoints = try await Self.endpoints(backend: backend)
        #expect(Self.text(await answer(endpoints, "{}")) == #"{"error": "body has no \"data\" field"}"#)
        let published = await answer(endpoints, #"{"data": "hi", "id": 7}"#)
        #expect(published.status == .ok)
        #expect(Self.text(published) == #"{"id": "1-5", "receivers": 2}"#)
        #expect(backend.published.withLock { $0.map(\.0) } == ["c"])
        let down = try await Self.endpoints(backend: FixedBackend(publishResult: .failure(RedisError(.connectionFailed, "down"))))
        let failed = await answer(down, #"{"data": "hi"}"#)
        #expect(failed.status == .serviceUnavailable)
        #expect(failed.headers.first { $0.0 == "Retry-After" }?.1 == "1")
    }

    @Test("preflight: 204 with the methods for an allowed origin; only Vary for another")
    func preflight() async throws {
        let endpoints = try await Self.endpoints(cors: ["https://app.example"])
        let allowed = endpoints.preflight(Self.request(.OPTIONS, "/stream", [("Origin", "https://app.example")]), methods: "GET, HEAD, OPTIONS")
        #expect(allowed.status == .noContent)
        #expect(allowed.headers.contains { $0.0 == "Access-Control-Allow-Methods" && $0.1 == "GET, HEAD, OPTIONS" })
        let refused = endpoints.preflight(Self.request(.OPTIONS, "/stream", [("Origin", "https://evil.example")]), methods: "GET, HEAD, OPTIONS")
        #expect(refused.headers.map(\.0) == ["Vary"])
    }
}
