import NIOCore
import NIOPosix
import Synchronization

/// A stream client for load tests: parses the chunked event stream incrementally on its event
/// loop and keeps only counters, checking that events `data:N …` arrive as 0, 1, 2, … exactly once.
final class CountingStreamClient: Sendable {
    struct Tally: Sendable {
        var events = 0
        var comments = 0
        var outOfOrder = 0
        var nextExpected = 0
        var closed = false
        var headSeen = false
        var error: String?
    }

    private let channel: any Channel
    private let counter: Counter

    private init(channel: any Channel, counter: Counter) {
        self.channel = channel
        self.counter = counter
    }

    var snapshot: Tally { counter.tally.withLock { $0 } }

    /// Opens a stream; `receiveBuffer` sets a small socket receive buffer, so a paused client
    /// soon fills the server's socket buffer.
    static func open(port: Int, channel name: String, receiveBuffer: Int? = nil) async throws -> CountingStreamClient {
        let counter = Counter()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(counter)
                }
            }
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
        }
        let channel = try await bootstrap.connect(host: "127.0.0.1", port: port).get()
        let client = CountingStreamClient(channel: channel, counter: counter)
        try await channel.writeAndFlush(ByteBuffer(string: "GET /stream?channel=\(name) HTTP/1.1\r\nHost: x\r\n\r\n"))
        try await eventually("stream head") { client.snapshot.headSeen }
        return client
    }

    func close() async {
        try? await channel.close()
    }

    /// Stops reading from the socket.
    func pause() async throws {
        try await channel.setOption(.autoRead, value: false).get()
    }

    /// Reads again.
    func resume() async throws {
        try await channel.setOption(.autoRead, value: true).get()
        channel.read()
    }

    /// Parses the response head, then chunks (each one whole event or comment from our server,
    /// but split across reads arbitrarily), updating the tally.
    private final class Counter: ChannelInboundHandler, @unchecked Sendable {
        // @unchecked: all mutable state is touched only on the channel's event loop; `tally` is a Mutex.
        typealias InboundIn = ByteBuffer
        let tally = Mutex(Tally())
        private var pending: [UInt8] = []
        private var inBody = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            pending.append(contentsOf: buffer.readableBytesView)
            var index = 0
            if !inBody {
                guard let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
                inBody = true
                index = end.upperBound
                tally.withLock { $0.headSeen = true }
            }
            var events: [Int] = []
            var comments = 0
            while let lineEnd = pending[index...].firstRange(of: [13, 10]) {
                guard let size = Int(String(decoding: pending[index..<lineEnd.lowerBound], as: UTF8.self), radix: 16) else {
                    tally.withLock { $0.error = "bad chunk header" }
                    return
                }
                let start = lineEnd.upperBound
                guard pending.count >= start + size + 2 else { break }
                if size > 0 {
                    let frame = pending[start..<start + size]
                    if frame.first == UInt8(ascii: ":") {
                        comments += 1
                    } else if frame.starts(with: "data:".utf8) {
                        let digits = frame.dropFirst(5).prefix { $0 >= 48 && $0 <= 57 }
                        events.append(Int(String(decoding: digits, as: UTF8.self)) ?? -1)
                    }
                }
                index = start + size + 2
            }
            pending.removeFirst(index)
            tally.withLock { tally in
                tally.comments += comments
                for sequence in events {
                    if sequence != tally.nextExpected { tally.outOfOrder += 1 }
                    tally.nextExpected = sequence + 1
                    tally.events += 1
                }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            tally.withLock { $0.closed = true }
        }
    }
}
