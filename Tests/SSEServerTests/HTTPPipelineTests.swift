import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SSEAuth
import SSERedis
import Testing

@testable import SSEServer
@testable import SSEStreamCore

/// The request path through ``HTTPPipeline`` on an `EmbeddedChannel`: bytes in, bytes out. No
/// Redis is running (the node is never started), so these cover what is decided on the loop.
@Suite("HTTP pipeline on an EmbeddedChannel")
struct HTTPPipelineTests {
    static func channel(
        peer: String = "127.0.0.1",
        _ configure: (inout BrokerConfiguration) -> Void = { _ in }
    ) async throws -> EmbeddedChannel {
        var configuration = BrokerConfiguration(host: "127.0.0.1", port: 0, redis: try RedisConfiguration(url: "redis://127.0.0.1:1/0"), threads: 1)
        configuration.requestTimeoutSeconds = 1
        configuration.idleTimeoutSeconds = 5
        configure(&configuration)
        let loop = EmbeddedEventLoop()
        var logger = Logger(label: "test.pipeline")
        logger.logLevel = .critical
        let services = try await BrokerServices.make(configuration: configuration, group: loop, logger: logger)
        let channel = EmbeddedChannel(loop: loop)
        try HTTPPipeline.configure(channel.pipeline.syncOperations, services: services, socket: -1)
        try await channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 5000)).get()
        // The peer: connecting set the remote address to the node's own.
        channel.remoteAddress = try SocketAddress(ipAddress: peer, port: 40000)
        return channel
    }

    /// Everything the channel wrote so far, as text.
    static func output(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: buffer)
        }
        return text
    }

    /// Lets the access check (a task off the loop) answer.
    static func settle(_ channel: EmbeddedChannel, until condition: () -> Bool = { false }) async throws {
        for _ in 0..<200 {
            channel.embeddedEventLoop.run()
            if condition() { return }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test("a publish refused from its head: 401 with Connection: close, though its 200 KB body never came")
    func refusedFromHead() async throws {
        let channel = try await Self.channel { $0.access = AccessConfiguration(publishKey: "k") }
        try channel.writeInbound(ByteBuffer(string: "POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\n\r\n{\"da"))
        var text = ""
        try await Self.settle(channel) {
            text += (try? Self.output(channel)) ?? ""
            return text.contains("\r\n\r\n{")
        }
        #expect(text.hasPrefix("HTTP/1.1 401 Unauthorized\r\n"))
        #expect(text.contains("Connection: close"))
        // Exactly one answer: the close that follows is not answered again as a truncated request.
        #expect(text.components(separatedBy: "HTTP/1.1 ").count == 2, "\(text)")
        #expect(text.hasSuffix(#"{"error": "publishing needs a bearer token (a JWT with sse.publish, or the publish key)"}"#), "\(text)")
        _ = try? channel.finish()
    }

    @Test("open publish from a non-loopback peer: 403, from the head")
    func remotePeer() async throws {
        let channel = try await Self.channel(peer: "192.0.2.7")
        try channel.writeInbound(ByteBuffer(string: "POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n"))
        var text = ""
        try await Self.settle(channel) {
            text += (try? Self.output(channel)) ?? ""
            return text.contains("\r\n\r\n{")
        }
        #expect(text.hasPrefix("HTTP/1.1 403 Forbidden\r\n"), "\(text)")
        #expect(text.contains("open only to loopback clients"))
        _ = try? channel.finish()
    }

    @Test("Expect: 100-continue: 100 once allowed; 413 at once for a declared length over --max-payload")
    func expectContinue() async throws {
        let allowed = try await Self.channel { $0.access = AccessConfiguration(publishKey: "k") }
        try allowed.writeInbound(ByteBuffer(string: "POST /publish HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer k\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"))
        var text = ""
        try await Self.settle(allowed) {
            text += (try? Self.output(allowed)) ?? ""
            return !text.isEmpty
        }
        #expect(text == "HTTP/1.1 100 Continue\r\n\r\n")
        _ = try? allowed.finish()

        let tooLarge = try await Self.channel { $0.maxPayloadBytes = 1000 }
        try tooLarge.writeInbound(ByteBuffer(string: "POST /publish HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n"))
        let answer = try Self.output(tooLarge)
        #expect(answer.hasPrefix("HTTP/1.1 413 Payload Too Large\r\n"))
        #expect(!answer.contains("100 Continue"))
        _ = try? tooLarge.finish()
    }

    /// Open publishing and the publish key need no await, so the decision is made in the read
    /// that brought the head: no task, no hop off the loop. The output is read with no
    /// `settle`: an answer that waited for a task would not be there yet.
    @Test("publish access without a JWT is decided on the loop, in the read of the head", arguments: [
        ("k", "Authorization: Bearer k\r\n", "127.0.0.1", "HTTP/1.1 100 Continue\r\n\r\n"),
        ("k", "Authorization: Bearer wrong\r\n", "127.0.0.1", "HTTP/1.1 401 Unauthorized\r\n"),
        ("k", "", "127.0.0.1", "HTTP/1.1 401 Unauthorized\r\n"),
        (nil, "", "127.0.0.1", "HTTP/1.1 100 Continue\r\n\r\n"),
        (nil, "", "192.0.2.7", "HTTP/1.1 403 Forbidden\r\n"),
    ] as [(String?, String, String, String)])
    func publishDecidedOnTheLoop(key: String?, header: String, peer: String, expected: String) async throws {
        let channel = try await Self.channel(peer: peer) { $0.access = AccessConfiguration(publishKey: key) }
        try channel.writeInbound(ByteBuffer(string: "POST /publish HTTP/1.1\r\nHost: localhost\r\n\(header)Expect: 100-continue\r\nContent-Length: 10\r\n\r\n"))
        let text = try Self.output(channel)
        #expect(text.hasPrefix(expected), "\(text)")
        _ = try? channel.finish()
    }

    @Test("a head that does not end within --request-timeout gets 408, at the deadline from accept, at every chunk size", arguments: [1, 3, 17])
    func requestTimeout(chunk: Int) async throws {
        let channel = try await Self.channel()
        let head = Array("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaa".utf8)
        var sent = 0
        while sent < head.count {
            let end = min(head.count, sent + chunk)
            try channel.writeInbound(ByteBuffer(bytes: head[sent..<end]))
            sent = end
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(10))
        }
        #expect(try Self.output(channel).isEmpty)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        let text = try Self.output(channel)
        #expect(text.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(text.contains("Connection: close"))
        #expect(!channel.isActive)
    }

    @Test("keep-alive: a second request in time is answered; then idle past --idle-timeout closes quietly")
    func idleTimeout() async throws {
        let channel = try await Self.channel()
        for _ in 0..<2 {
            try channel.writeInbound(ByteBuffer(string: "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"))
            #expect(try Self.output(channel).hasPrefix("HTTP/1.1 200 OK\r\n"))
            channel.embeddedEventLoop.advanceTime(by: .seconds(4))
            #expect(channel.isActive)
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(try Self.output(channel).isEmpty)
        #expect(!channel.isActive)
    }

    @Test("pipelined requests wait while the channel is not writable, and are answered in order once it is")
    func parkedWhileUnwritable() async throws {
        let channel = try await Self.channel()
        channel.isWritable = false
        try channel.writeInbound(ByteBuffer(string: String(repeating: "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", count: 3)))
        #expect(try Self.output(channel).isEmpty)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        let text = try Self.output(channel)
        #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 4, "\(text)")
        _ = try? channel.finish()
    }

    @Test("more than --max-channels channels: 400 with a JSON body")
    func maxChannels() async throws {
        let channel = try await Self.channel { $0.maxChannelsPerStream = 2 }
        try channel.writeInbound(ByteBuffer(string: "GET /stream?channel=a&channel=b&channel=a&channel=c HTTP/1.1\r\nHost: localhost\r\n\r\n"))
        let text = try Self.output(channel)
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(text.hasSuffix(#"{"error": "a stream may name at most 2 channels"}"#))
        _ = try? channel.finish()
    }

    @Test("Content-Length with junk or past Int: 400 from the parser, no trap")
    func junkContentLength() async throws {
        for value in ["abc", "99999999999999999999999", "-1", "1e3", "10, 11"] {
            let channel = try await Self.channel()
            _ = try? channel.writeInbound(ByteBuffer(string: "POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(value)\r\n\r\n"))
            let text = try Self.output(channel)
            #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "Content-Length: \(value): \(text)")
            _ = try? channel.finish()
        }
    }

    @Test("a malformed request, or one cut off at --request-timeout, is answered exactly once, not again when the connection ends")
    func answeredOnce() async throws {
        let malformed = try await Self.channel()
        _ = try? malformed.writeInbound(ByteBuffer(string: "GET /\r\n\r\n"))
        _ = try? await malformed.close().get()
        let first = try Self.output(malformed)
        #expect(first.components(separatedBy: "HTTP/1.1 ").count == 2, "\(first)")
        let slow = try await Self.channel()
        try slow.writeInbound(ByteBuffer(string: "GET /healthz HTTP/1.1\r\nHost: loc"))
        slow.embeddedEventLoop.advanceTime(by: .seconds(2))
        let second = try Self.output(slow)
        #expect(second.hasPrefix("HTTP/1.1 408"))
        #expect(second.components(separatedBy: "HTTP/1.1 ").count == 2, "\(second)")
    }
}
