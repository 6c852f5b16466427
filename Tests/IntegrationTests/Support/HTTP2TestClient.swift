import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// A real HTTP/2 client (swift-nio-http2, over swift-nio-ssl or cleartext with prior knowledge)
/// for the node's HTTP/2 tests: one connection, any number of streams on it, each collecting
/// its response (status, headers, body bytes, how it ended). A stream can be opened not
/// reading, so its flow-control window is never given back and the node's writes to it stall.
final class HTTP2TestClient: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let multiplexer: NIOHTTP2Handler.StreamMultiplexer
    private let goAwayCount = GoAwayCounter.Count()
    private let peer = HandshakeWaiter.Peer()
    /// The certificate the server presented (TLS only).
    var peerCertificate: NIOSSLCertificate? { peer.certificate.withLock { $0 } }
    /// GOAWAY frames the connection received.
    var goAways: Int { goAwayCount.value.withLock { $0 } }

    /// The window each stream opens with (`SETTINGS_INITIAL_WINDOW_SIZE`): what a stream that
    /// stops reading receives before it stalls.
    static let streamWindow = 1 << 20

    /// Connects to `port` on loopback: TLS trusting `trustedCA` (nil: cleartext, prior knowledge).
    /// `verifiesName: false` checks the chain only, not the name (to see which certificate a
    /// server presents).
    /// `maximumVersion` caps the TLS version the client offers (to see older ones refused).
    init(port: Int, trustedCA: String?, serverName: String = "localhost", verifiesName: Bool = true, maximumVersion: TLSVersion? = nil) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let sslContext: NIOSSLContext?
        if let trustedCA {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(trustedCA)
            if !verifiesName { tls.certificateVerification = .noHostnameVerification }
            if let maximumVersion {
                tls.maximumTLSVersion = maximumVersion
                tls.minimumTLSVersion = .tlsv1
            }
            tls.applicationProtocols = ["h2"]
            sslContext = try NIOSSLContext(configuration: tls)
        } else {
            sslContext = nil
        }
        let made = group.next().makePromise(of: NIOHTTP2Handler.StreamMultiplexer.self)
        let handshake = group.next().makePromise(of: Void.self)
        let goAways = self.goAwayCount
        let peer = self.peer
        do {
            let channel = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        if let sslContext {
                            try pipeline.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                            try pipeline.addHandler(HandshakeWaiter(handshake, peer: peer))
                        } else {
                            handshake.succeed()
                        }
                        var connection = NIOHTTP2Handler.ConnectionConfiguration()
                        // Windows as browsers open them (Chromium: 15 MB per connection, 6 MB per
                        // stream), smaller: 16 MiB and 1 MiB. A stream that reads gets a burst
                        // without waiting for window updates; one that stops reading stalls after 1 MiB.
                        connection.targetWindowSize = 16 << 20
                        connection.initialSettings = [
                            HTTP2Setting(parameter: .maxConcurrentStreams, value: 1000),
                            HTTP2Setting(parameter: .initialWindowSize, value: Self.streamWindow),
                        ]
                        let multiplexer = try pipeline.configureHTTP2Pipeline(
                            mode: .client,
                            connectionConfiguration: connection,
                            streamConfiguration: .init()
                        ) { $0.eventLoop.makeSucceededVoidFuture() }
                        try pipeline.addHandler(GoAwayCounter(count: goAways))
                        made.succeed(multiplexer)
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            self.channel = channel
            self.multiplexer = try await made.futureResult.get()
            self.group = group
            // A handshake that fails (a certificate this client does not trust) fails the init.
            do {
                try await handshake.futureResult.get()
            } catch {
                try? await channel.close()
                throw error
            }
        } catch {
            made.fail(error)
            handshake.fail(error)
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Opens a stream with a request (`body` sent as DATA); `reading: false` leaves its
    /// window closed once it fills (the stream stops reading).
    func open(_ path: String, method: String = "GET", headers: [(String, String)] = [], body: [UInt8] = [], reading: Bool = true) async throws -> HTTP2TestStream {
        let response = HTTP2TestStream()
        let loop = channel.eventLoop
        let multiplexer = self.multiplexer
        guard channel.isActive else { throw TestFailure("the HTTP/2 connection is closed") }
        let streamChannel: any Channel = try await loop.flatSubmit {
            let created = loop.makePromise(of: (any Channel).self)
            multiplexer.createStreamChannel(promise: created) { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(HTTP2TestStream.Collector(response))
                    if !reading { try stream.syncOptions?.setOption(.autoRead, value: false) }
                }
            }
            // Bounded: a connection that closes meanwhile must not leave the test waiting.
            let result = loop.makePromise(of: (any Channel).self)
            let settled = NIOLoopBoundBox(false, eventLoop: loop)
            created.futureResult.whenComplete { outcome in
                guard !settled.value else { return }
                settled.value = true
                result.completeWith(outcome)
            }
            loop.scheduleTask(in: .seconds(10)) {
                guard !settled.value else { return }
                settled.value = true
                result.fail(TestFailure("no HTTP/2 stream within 10 s"))
            }
            return result.futureResult
        }.get()
        var requestHeaders = HPACKHeaders([(":method", method), (":path", path), (":scheme", "https"), (":authority", "localhost")])
        for (name, value) in headers { requestHeaders.add(name: name.lowercased(), value: value) }
        let headFrame = HTTP2Frame.FramePayload.headers(.init(headers: requestHeaders, endStream: body.isEmpty))
        // Not waited for: past the server's stream limit, SwiftNIO holds the stream until one
        // closes, and the test goes on meanwhile.
        streamChannel.write(headFrame, promise: nil)
        if !body.isEmpty {
            streamChannel.write(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(bytes: body)), endStream: true)), promise: nil)
        }
        streamChannel.flush()
        response.channel.withLock { $0 = streamChannel }
        return response
    }

    /// Whether the connection is still open.
    var isActive: Bool { channel.isActive }

    /// Waits (bounded) for the connection to close.
    func waitForClose(within timeout: Duration = .seconds(10)) async throws {
        try await eventually(timeout: timeout, "the HTTP/2 connection to close") { !self.channel.isActive }
    }

    func close() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

/// One stream's response as it arrives.
final class HTTP2TestStream: Sendable {
    private struct State {
        var headers: HPACKHeaders?
        var body: [UInt8] = []
        var ended = false
        var resetCode: HTTP2ErrorCode?
        var closed = false
    }

    private let state = Mutex(State())
    fileprivate let channel = Mutex<(any Channel)?>(nil)

    var status: Int? { state.withLock { $0.headers?.first(name: ":status").flatMap { Int($0) } } }
    func header(_ name: String) -> String? { state.withLock { $0.headers?.first(name: name) } }
    var body: [UInt8] { state.withLock { $0.body } }
    var text: String { String(decoding: body, as: UTF8.self) }
    /// The server ended the stream (END_STREAM).
    var ended: Bool { state.withLock { $0.ended } }
    /// The server reset the stream (RST_STREAM) with this code.
    var resetCode: HTTP2ErrorCode? { state.withLock { $0.resetCode } }
    var closed: Bool { state.withLock { $0.closed } }

    /// Waits (bounded) until the body holds `count` occurrences of `needle`.
    func waitFor(_ needle: String, count: Int = 1, timeout: Duration = .seconds(10)) async throws {
        try await eventually(timeout: timeout, "\(count)x '\(needle)' on an HTTP/2 stream") {
            self.text.components(separatedBy: needle).count - 1 >= count
        }
    }

    /// Waits (bounded) for the response head.
    func head(timeout: Duration = .seconds(10)) async throws -> Int {
        try await eventually(timeout: timeout, "an HTTP/2 response head") { self.status != nil }
        return status ?? 0
    }

    /// Resets the stream from the client side.
    func cancel() {
        channel.withLock { $0 }?.close(promise: nil)
    }

    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTP2Frame.FramePayload
        private let stream: HTTP2TestStream

        init(_ stream: HTTP2TestStream) {
            self.stream = stream
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .headers(let headers):
                stream.state.withLock { state in
                    // A 1xx head is followed by the final one.
                    if state.headers == nil || state.headers?.first(name: ":status")?.hasPrefix("1") == true {
                        state.headers = headers.headers
                    }
                    if headers.endStream { state.ended = true }
                }
            case .data(let data):
                guard case .byteBuffer(let buffer) = data.data else { return }
                stream.state.withLock { state in
                    state.body += buffer.readableBytesView
                    if data.endStream { state.ended = true }
                }
            case .rstStream(let code):
                stream.state.withLock { $0.resetCode = code }
            default:
                break
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if let reset = error as? NIOHTTP2Errors.StreamClosed {
                stream.state.withLock { $0.resetCode = reset.errorCode }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            stream.state.withLock { $0.closed = true }
        }
    }
}

/// Completes its promise when the TLS handshake does, fails it when the handshake fails or the
/// connection closes first.
private final class HandshakeWaiter: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    final class Peer: Sendable {
        let certificate = Mutex<NIOSSLCertificate?>(nil)
    }

    private let promise: EventLoopPromise<Void>
    private let peer: Peer

    init(_ promise: EventLoopPromise<Void>, peer: Peer) {
        self.promise = promise
        self.peer = peer
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            let certificate = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate
            peer.certificate.withLock { $0 = certificate }
            promise.succeed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(TestFailure("the connection closed before the TLS handshake completed"))
        context.fireChannelInactive()
    }
}

/// Counts GOAWAY frames on the connection (stream 0's frames reach the handler after HTTP/2's).
private final class GoAwayCounter: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTP2Frame

    final class Count: Sendable {
        let value = Mutex(0)
    }

    private let count: Count

    init(count: Count) {
        self.count = count
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway = unwrapInboundIn(data).payload { count.value.withLock { $0 += 1 } }
        context.fireChannelRead(data)
    }
}
