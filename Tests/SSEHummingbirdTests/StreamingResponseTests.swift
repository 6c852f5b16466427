#if Hummingbird
import Hummingbird
import HummingbirdTesting
import NIOCore
import SSEHummingbird
import SSEStreamCore
import Synchronization
import Testing

/// `ResponseBody(draining:whileConnected:)` in a real Hummingbird app: the bytes a sink is given
/// reach the client as they come, with the writer's backpressure, and however the response
/// ends the stream hears `sinkClosed()` once.
@Suite("Streaming a bounded sink through Hummingbird")
struct StreamingResponseTests {
    static let request = "GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n"

    /// An app whose `/stream` opens `probe`'s stream with `first` already flushed.
    static func app(_ probe: StreamProbe, first: [String] = [], end: Bool = false) -> some ApplicationProtocol {
        let router = Router()
        router.get("stream") { request, _ -> Response in
            let chunks = try await probe.open(first: first, end: end)
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-cache"],
                body: ResponseBody(draining: chunks, whileConnected: request)
            )
        }
        return Application(router: router)
    }

    @Test("router mode: a stream that ends gives the whole body, in order")
    func routerModeWholeBody() async throws {
        let probe = StreamProbe()
        let app = Self.app(probe, first: ["data:1\n\n", "data:2\n\n", ":\n\n"], end: true)
        try await app.test(.router) { client in
            try await client.execute(uri: "/stream", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/event-stream; charset=utf-8")
                #expect(String(buffer: response.body) == "data:1\n\ndata:2\n\n:\n\n")
            }
        }
        #expect(await probe.wait(for: .closed))
        try await probe.settle()
        #expect(probe.count(of: .closed) == 1)
    }

    @Test("live: chunks reach the client as they are flushed, while the stream stays open; a client disconnect reaches sinkClosed at once")
    func liveStreamingAndDisconnect() async throws {
        let probe = StreamProbe()
        try await Self.app(probe, first: ["data:1\n\n"]).test(.live) { client in
            let port = try #require(client.port)
            let raw = try await RawHTTPClient.connect(port: port)
            try await raw.send(Self.request)
            #expect(await raw.wait(for: "data:1\n\n"))
            #expect(raw.text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(raw.text.lowercased().contains("transfer-encoding: chunked\r\n"))
            try await probe.onLoop { sink, _ in sink.writeAndFlush(ByteBuffer(string: "data:2\n\n")) }
            #expect(await raw.wait(for: "data:2\n\n"))
            // Still streaming: no terminating chunk, connection open.
            #expect(!raw.text.hasSuffix("0\r\n\r\n"))
            #expect(!raw.isClosed)
            #expect(probe.count(of: .closed) == 0)
            // The stream is idle: only the inbound close can tell the sink the client left.
            await raw.close()
            #expect(await probe.wait(for: .closed))
            try await probe.onLoop { sink, _ in
                sink.writeAndFlush(ByteBuffer(string: "data:late\n\n"))
                sink.end(after: nil)
            }
            try await probe.settle()
            #expect(probe.count(of: .closed) == 1)
        }
    }

    @Test("live: a stream that ends finishes the chunked body cleanly")
    func liveEnd() async throws {
        let probe = StreamProbe()
        try await Self.app(probe, first: ["data:1\n\n"]).test(.live) { client in
            let raw = try await RawHTTPClient.connect(port: try #require(client.port))
            try await raw.send(Self.request)
            #expect(await raw.wait(for: "data:1\n\n"))
            try await probe.onLoop { sink, _ in sink.end(after: ByteBuffer(string: "data:last\n\n")) }
            #expect(await raw.wait(for: "0\r\n\r\n"))
            #expect(raw.text.contains("data:last\n\n"))
            #expect(await probe.wait(for: .closed))
            await raw.close()
        }
        try await probe.settle()
        #expect(probe.count(of: .closed) == 1)
    }

    @Test("live: a stream that cuts its client off closes the connection without ending the body")
    func liveCutOff() async throws {
        let probe = StreamProbe()
        try await Self.app(probe, first: ["data:1\n\n"]).test(.live) { client in
            let raw = try await RawHTTPClient.connect(port: try #require(client.port))
            try await raw.send(Self.request)
            #expect(await raw.wait(for: "data:1\n\n"))
            try await probe.onLoop { sink, _ in sink.abort() }
            #expect(await raw.waitForClose())
            #expect(!raw.text.hasSuffix("0\r\n\r\n"))
            #expect(await probe.wait(for: .closed))
        }
        try await probe.settle()
        #expect(probe.count(of: .closed) == 1)
    }

    @Test("live: a client that does not read holds the stream back (not writable, bounded), and reading resumes it")
    func liveBackpressure() async throws {
        let chunk = String(repeating: "x", count: 16 * 1024 - 8) + "\n\n"
        let probe = StreamProbe(clientBufferBytes: 64 * 1024)
        let written = WrittenCount()
        try await Self.app(probe).test(.live) { client in
            let raw = try await RawHTTPClient.connect(
                port: try #require(client.port),
                reading: false,
                receiveBuffer: 16 * 1024
            )
            try await raw.send(Self.request)
            // The route must have opened the stream before the test writes to it (on a loaded
            // machine it can take longer than any fixed pause).
            #expect(try await probe.waitOpened())
            // The stream writes while the sink is writable, as the broker does.
            try await probe.onLoop { sink, owner in
                func pump() {
                    while sink.isWritable, !sink.isClosed, written.bytes < 256 * 1024 * 1024 {
                        sink.writeAndFlush(ByteBuffer(string: "data:" + chunk))
                        written.add(chunk.utf8.count + 5)
                    }
                }
                owner.onWritable = pump
                pump()
            }
            #expect(await probe.wait(for: .writable(false)))
            // Let whatever fits in the socket buffers leave; then the sink stays full.
            try await Task.sleep(for: .milliseconds(300))
            try await probe.settle()
            let before = written.bytes
            // Kernel buffers on loopback plus NIO's: tens of megabytes at most (the receive buffer
            // autotunes up to tcp_rmem's maximum, 32 MiB here), never the 256 MiB an unbounded
            // writer would reach.
            #expect(before < 48 * 1024 * 1024)
            try await raw.startReading()
            #expect(await probe.wait(for: .writable(true)))
            #expect(await raw.wait(seconds: 20) { text, _ in text.utf8.count > before })
            try await probe.onLoop { sink, owner in
                owner.onWritable = nil
                sink.end(after: nil)
            }
            await raw.close()
        }
        #expect(await probe.wait(for: .closed))
    }
}

/// Bytes a test stream has written, read from the test task.
final class WrittenCount: Sendable {
    private let count = Mutex(0)
    var bytes: Int { count.withLock { $0 } }
    func add(_ bytes: Int) { count.withLock { $0 += bytes } }
}
#endif
