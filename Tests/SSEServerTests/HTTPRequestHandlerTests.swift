import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SSEAuth
import SSEEndpoints
import SSERedis
import Testing

@testable import SSEServer
@testable import SSEStreamCore

/// The request handler's answers, byte for byte, through the node's real pipeline on an
/// `EmbeddedChannel`. No Redis runs: the services point at a port nobody listens on and the
/// subscriber is never started, so everything here is decided on the loop.
@Suite("HTTP request handler on an EmbeddedChannel")
struct HTTPRequestHandlerTests {
    /// A node's services with their streams on `loop`.
    struct Node {
        let services: BrokerServices
        let loop: EmbeddedEventLoop
        var hub: StreamHub { services.hub }
    }

    static func services(_ configure: (inout BrokerConfiguration) -> Void = { _ in }) async throws -> Node {
        var configuration = BrokerConfiguration(host: "127.0.0.1", port: 0, redis: try RedisConfiguration(url: "redis://127.0.0.1:1/0"), threads: 1)
        configuration.maxPayloadBytes = 64
        configuration.maxHeadBytes = 1024
        configure(&configuration)
        var logger = Logger(label: "test.handler")
        logger.logLevel = .critical
        let loop = EmbeddedEventLoop()
        return Node(services: try await BrokerServices.make(configuration: configuration, group: loop, logger: logger), loop: loop)
    }

    static func channel(_ node: Node) throws -> EmbeddedChannel {
        // The hub's loop, so a stream registers where the hub expects it.
        let channel = EmbeddedChannel(loop: node.loop)
        try HTTPPipeline.configure(channel.pipeline.syncOperations, services: node.services, socket: -1)
        channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 5000), promise: nil)
        channel.remoteAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 40000)
        return channel
    }

    /// Sends `request` in one read and returns everything written back.
    static func exchange(_ services: Node, _ request: String) throws -> String {
        let channel = try channel(services)
        _ = try? channel.writeInbound(ByteBuffer(string: request))
        let text = try output(channel)
        _ = try? channel.finish()
        return text
    }

    static func output(_ channel: EmbeddedChannel) throws -> String {
        try HTTPPipelineTests.output(channel)
    }

    static func json(_ status: String, _ body: String, connection: String = "keep-alive", extra: String = "") -> String {
        "HTTP/1.1 \(status)\r\n\(extra)Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: \(connection)\r\n\r\n\(body)"
    }

    @Test("404 for an unknown path; 405 with Allow for a known path's other method")
    func notFoundAndNotAllowed() async throws {
        let services = try await Self.services()
        #expect(try Self.exchange(services, "GET /nothing?channel=a HTTP/1.1\r\nHost: localhost\r\n\r\n")
            == Self.json("404 Not Found", #"{"error": "no such endpoint: /nothing"}"#))
        #expect(try Self.exchange(services, "DELETE /stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
            == Self.json("405 Method Not Allowed", #"{"error": "method DELETE not allowed; use GET, HEAD, OPTIONS"}"#, extra: "Allow: GET, HEAD, OPTIONS\r\n"))
        #expect(try Self.exchange(services, "GET /publish HTTP/1.1\r\nHost: localhost\r\n\r\n")
            == Self.json("405 Method Not Allowed", #"{"error": "method GET not allowed; use POST, OPTIONS"}"#, extra: "Allow: POST, OPTIONS\r\n"))
        #expect(try Self.exchange(services, "POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
            == Self.json("405 Method Not Allowed", #"{"error": "method POST not allowed; use GET"}"#, extra: "Allow: GET\r\n"))
        // Without --demo nothing is mounted at /.
        #expect(try Self.exchange(services, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n") == Self.json("404 Not Found", #"{"error": "no such endpoint: /"}"#))
        #expect(try Self.exchange(services, "GET /stream/extra HTTP/1.1\r\nHost: localhost\r\n\r\n")
            == Self.json("404 Not Found", #"{"error": "no such endpoint: /stream/extra"}"#))
        #expect(try Self.exchange(services, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n") == Self.json("200 OK", #"{"status": "ok"}"#))
        // No Redis here: the subscription is down.
        #expect(try Self.exchange(services, "GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            == Self.json("503 Service Unavailable", #"{"status": "redis subscription down"}"#))
    }

    @Test("bad channel names: 400 with a JSON error, a publish's body read and ignored", arguments: [
        ("GET /stream?channel=" + String(repeating: "c", count: 257), "channel name longer than 256 bytes"),
        ("GET /stream?channel=a%0Aid:1", "channel name contains control characters"),
        ("GET /stream?channel=%00", "channel name contains control characters"),
        ("POST /publish?channel=%1B", "channel name contains control characters"),
    ])
    func badChannel(requestLine: String, message: String) async throws {
        let services = try await Self.services()
        let body = requestLine.hasPrefix("POST") ? #"{"data": 1}"# : ""
        #expect(try Self.exchange(services, "\(requestLine) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            == Self.json("400 Bad Request", #"{"error": "\#(message)"}"#, connection: "close"))
    }

    @Test("HEAD: the GET answer's head with its Content-Length and no body; a stream's HEAD is its head, chunked, and no stream")
    func head() async throws {
        let services = try await Self.services()
        #expect(try Self.exchange(services, "HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: keep-alive\r\n\r\n")
        let streamHead = try Self.exchange(services, "HEAD /stream?channel=a HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(streamHead
            == "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
            // SwiftNIO's encoder moves the framing header of a HEAD answer (which has no body) last.
            + "Connection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n", "\(streamHead.debugDescription)")
        #expect(services.hub.connectedCount == 0)
        // The connection stays an HTTP connection: the next request's answer follows the head directly.
        let then = try Self.exchange(services, "HEAD /stream HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(then == streamHead + Self.json("200 OK", #"{"status": "ok"}"#))
    }

    @Test("CORS: an allowed origin is echoed with credentials, another gets only Vary; preflights likewise")
    func cors() async throws {
        let services = try await Self.services { $0.corsOrigins = ["https://app.example"] }
        let allowed = "Access-Control-Allow-Origin: https://app.example\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n"
        #expect(try Self.exchange(services, "GET /nothing HTTP/1.1\r\nHost: localhost\r\nOrigin: https://app.example\r\n\r\n")
            == "HTTP/1.1 404 Not Found\r\n\(allowed)Content-Type: application/json\r\nContent-Length: 39\r\nConnection: keep-alive\r\n\r\n"
            + #"{"error": "no such endpoint: /nothing"}"#)
        #expect(try Self.exchange(services, "GET /nothing HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\n\r\n")
            == "HTTP/1.1 404 Not Found\r\nVary: Origin\r\nContent-Type: application/json\r\nContent-Length: 39\r\nConnection: keep-alive\r\n\r\n"
            + #"{"error": "no such endpoint: /nothing"}"#)
        #expect(try Self.exchange(services, "OPTIONS /publish HTTP/1.1\r\nHost: localhost\r\nOrigin: https://app.example\r\n\r\n")
            == "HTTP/1.1 204 No Content\r\n\(allowed)Access-Control-Allow-Methods: POST, OPTIONS\r\n"
            + "Access-Control-Allow-Headers: Authorization, Content-Type, Last-Event-ID\r\nAccess-Control-Max-Age: 600\r\nConnection: keep-alive\r\n\r\n")
        #expect(try Self.exchange(services, "OPTIONS /stream HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\n\r\n")
            == "HTTP/1.1 204 No Content\r\nVary: Origin\r\nConnection: keep-alive\r\n\r\n")
        // Health answers carry no CORS headers.
        #expect(try Self.exchange(services, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nOrigin: https://app.example\r\n\r\n")
            == Self.json("200 OK", #"{"status": "ok"}"#))
    }

    @Test("413 for a publish body past --max-payload (declared or sent) and for another request's body; then close")
    func payloadTooLarge() async throws {
        let services = try await Self.services()
        let publish = #"{"error": "publish body larger than 64 bytes"}"#
        #expect(try Self.exchange(services, "POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: 65\r\n\r\n")
            == Self.json("413 Payload Too Large", publish, connection: "close"))
        #expect(try Self.exchange(services, "POST /publish HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n" + String(repeating: "a", count: 65) + "\r\n")
            == Self.json("413 Payload Too Large", publish, connection: "close"))
        #expect(try Self.exchange(services, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 65\r\n\r\n" + String(repeating: "a", count: 65))
            == Self.json("413 Payload Too Large", #"{"error": "request body larger than 64 bytes"}"#, connection: "close"))
    }

    @Test("431 for a head past --max-head-bytes; 400 for malformed requests and bad channels")
    func badRequests() async throws {
        let services = try await Self.services()
        #expect(try Self.exchange(services, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: \(String(repeating: "b", count: 1100))\r\n\r\n")
            == Self.json("431 Request Header Fields Too Large", #"{"error": "request head larger than 1024 bytes"}"#, connection: "close"))
        let malformed = try Self.exchange(services, "GET / HTTP/9\r\n\r\n")
        #expect(malformed.hasPrefix("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: "), "\(malformed)")
        #expect(malformed.contains("\r\nConnection: close\r\n\r\n{\"error\": \"malformed HTTP request: "))
        #expect(try Self.exchange(services, "GET /stream?channel=%01 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            == Self.json("400 Bad Request", #"{"error": "channel name contains control characters"}"#))
        #expect(try Self.exchange(services, "POST /publish?channel=\(String(repeating: "c", count: 300)) HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}")
            == Self.json("400 Bad Request", #"{"error": "channel name longer than 256 bytes"}"#))
    }

    @Test("keep-alive by default on HTTP/1.1; Connection: close and HTTP/1.0 close after the answer")
    func keepAliveAndClose() async throws {
        let services = try await Self.services()
        let channel = try Self.channel(services)
        try channel.writeInbound(ByteBuffer(string: "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"))
        #expect(try Self.output(channel) == Self.json("200 OK", #"{"status": "ok"}"#))
        #expect(channel.isActive)
        try channel.writeInbound(ByteBuffer(string: "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
        #expect(try Self.output(channel) == Self.json("200 OK", #"{"status": "ok"}"#, connection: "close"))
        #expect(!channel.isActive)
        let old = try Self.exchange(services, "GET /healthz HTTP/1.0\r\n\r\n")
        #expect(old == "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{\"status\": \"ok\"}")
    }

    @Test("two requests in one read are answered in order")
    func pipelining() async throws {
        let services = try await Self.services()
        let text = try Self.exchange(services, "GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(text == Self.json("404 Not Found", #"{"error": "no such endpoint: /nothing"}"#) + Self.json("200 OK", #"{"status": "ok"}"#))
    }

    @Test("a stream request: its head first, the HTTP handlers gone, a StreamConnectionHandler in their place")
    func streamUpgrade() async throws {
        let services = try await Self.services()
        let channel = try Self.channel(services)
        try channel.writeInbound(ByteBuffer(string: "GET /stream?channel=a HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n"))
        channel.embeddedEventLoop.run()
        #expect(try Self.output(channel)
            == "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
            + "Transfer-Encoding: chunked\r\n\r\n")
        let pipeline = channel.pipeline.syncOperations
        #expect(throws: (any Error).self) { try pipeline.handler(type: HTTPRequestHandler.self) }
        #expect(throws: (any Error).self) { try pipeline.handler(type: HTTPRequestGate.self) }
        #expect(throws: (any Error).self) { try pipeline.handler(type: HTTPResponseEncoder.self) }
        #expect(throws: (any Error).self) { try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) }
        #expect(throws: (any Error).self) { try pipeline.handler(type: NIOHTTPResponseHeadersValidator.self) }
        #expect(throws: (any Error).self) { try pipeline.handler(type: HTTPProtocolErrorResponder.self) }
        #expect(throws: (any Error).self) { try pipeline.handler(type: BackPressureHandler.self) }
        #expect(throws: (any Error).self) { try pipeline.handler(type: RequestTimeoutHandler.self) }
        #expect(throws: Never.self) { try pipeline.handler(type: StreamConnectionHandler.self) }
        #expect(services.hub.connectedCount == 1)
        _ = try? channel.finish()
        channel.embeddedEventLoop.run()
        #expect(services.hub.connectedCount == 0)
    }

    @Test("no reads while the channel is not writable; the read asked for meanwhile happens once it is")
    func readBackpressure() async throws {
        let node = try await Self.services()
        let channel = EmbeddedChannel(loop: node.loop)
        let reads = ReadCounter()
        try channel.pipeline.syncOperations.addHandler(reads)
        try HTTPPipeline.configure(channel.pipeline.syncOperations, services: node.services, socket: -1)
        channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 5000), promise: nil)
        let before = reads.count
        channel.read()
        #expect(reads.count == before + 1)
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.read()
        channel.read()
        #expect(reads.count == before + 1)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(reads.count == before + 2)
        _ = try? channel.finish()
    }

    /// Three pipelined requests (an answer, a refused body that is read and ignored, a close).
    static let fixedRequest = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
        + "POST /stream?channel=a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
        + "GET /nothing?x=%41 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"

    @Test("the same request bytes give the same answer bytes at every chunk size")
    func everyChunkSize() async throws {
        let services = try await Self.services()
        let expected = Self.json("200 OK", #"{"status": "ok"}"#)
            + Self.json("405 Method Not Allowed", #"{"error": "method POST not allowed; use GET, HEAD, OPTIONS"}"#, extra: "Allow: GET, HEAD, OPTIONS\r\n")
            + Self.json("404 Not Found", #"{"error": "no such endpoint: /nothing"}"#, connection: "close")
        let bytes = Array(Self.fixedRequest.utf8)
        for size in 1...bytes.count {
            let channel = try Self.channel(services)
            var text = ""
            var offset = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + size)
                try channel.writeInbound(ByteBuffer(bytes: bytes[offset..<end]))
                text += try Self.output(channel)
                offset = end
            }
            #expect(text == expected, "chunk size \(size)")
            #expect(!channel.isActive, "chunk size \(size)")
        }
    }
}

/// Counts the reads that reach the head of the pipeline.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    private(set) var count = 0

    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
    }
}

@available(*, unavailable)
extension ReadCounter: Sendable {}
