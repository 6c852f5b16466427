import NIOCore
import NIOPosix
import Synchronization

/// A raw TCP connection to a server under test: send bytes, wait for received bytes.
final class TestConnection: Sendable {
    private let channel: any Channel

    /// The client's own port (to find this connection in the kernel's tables).
    var localPort: Int? { channel.localAddress?.port }
    private let inbox: Inbox

    final class Inbox: Sendable {
        let bytes = Mutex<[UInt8]>([])
        let closed = Mutex(false)
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let inbox: Inbox
        init(inbox: Inbox) { self.inbox = inbox }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            inbox.bytes.withLock { $0.append(contentsOf: buffer.readableBytesView) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            inbox.closed.withLock { $0 = true }
        }
    }

    private init(channel: any Channel, inbox: Inbox) {
        self.channel = channel
        self.inbox = inbox
    }

    /// Connects to `host:port`; `receiveBuffer` shrinks SO_RCVBUF (slow-client tests).
    static func connect(host: String = "127.0.0.1", port: Int, autoRead: Bool = true, receiveBuffer: Int? = nil) async throws -> TestConnection {
        let inbox = Inbox()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: autoRead)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(inbox: inbox))
                }
            }
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
        }
        let channel = try await bootstrap.connect(host: host, port: port).get()
        return TestConnection(channel: channel, inbox: inbox)
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Everything received so far.
    var received: [UInt8] { inbox.bytes.withLock { $0 } }

    /// Whether the server closed the connection.
    var isClosed: Bool { inbox.closed.withLock { $0 } }

    /// Waits until `condition` holds for the bytes received so far.
    @discardableResult
    func waitFor(
        timeout: Duration = .seconds(10),
        _ what: String,
        _ condition: @escaping ([UInt8]) -> Bool
    ) async throws -> [UInt8] {
        try await eventually(timeout: timeout, "\(what); received so far: \(String(decoding: received.suffix(300), as: UTF8.self).debugDescription)") {
            condition(self.received)
        }
        return received
    }

    /// Waits until the server closes the connection.
    func waitForClose(timeout: Duration = .seconds(10)) async throws {
        try await eventually(timeout: timeout, "the server to close the connection") { self.isClosed }
    }

    /// Turns reading on for a connection opened with `autoRead: false`.
    func startReading() {
        channel.setOption(.autoRead, value: true).whenComplete { _ in }
        channel.read()
    }

    func close() async {
        try? await channel.close()
    }
}
