#if Hummingbird
import NIOCore
import NIOPosix
import Synchronization

/// A bare TCP client that sends a request as text and collects the raw response bytes as they
/// arrive, so a test sees a streamed body chunk by chunk (HummingbirdTesting's own clients
/// return a response only once it is complete). Reading can be held back to play a slow client.
final class RawHTTPClient: Sendable {
    private struct State {
        var received = ByteBuffer()
        var isClosed = false
        /// Bumped at every change, so a waiter cannot miss one that came just before it.
        var version = 0
        var waiter: CheckedContinuation<Void, Never>?
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let client: RawHTTPClient

        init(client: RawHTTPClient) {
            self.client = client
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            client.update { $0.received.writeBuffer(&bytes) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            client.update { $0.isClosed = true }
        }
    }

    private let state = Mutex(State())
    private let channel = Mutex<(any Channel)?>(nil)

    private init() {}

    /// Connects to `port` on loopback; with `reading: false` nothing is read until
    /// ``startReading()``, and the socket's receive buffer is `receiveBuffer` bytes.
    static func connect(port: Int, reading: Bool = true, receiveBuffer: Int? = nil) async throws -> RawHTTPClient {
        let client = RawHTTPClient()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: reading)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(client: client))
                }
            }
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: .init(receiveBuffer))
        }
        let channel = try await bootstrap.connect(host: "127.0.0.1", port: port).get()
        client.channel.withLock { $0 = channel }
        return client
    }

    private var connection: (any Channel)? { channel.withLock { $0 } }

    /// Everything received so far, as text.
    var text: String { state.withLock { String(buffer: $0.received) } }

    var receivedBytes: Int { state.withLock { $0.received.readableBytes } }

    var isClosed: Bool { state.withLock { $0.isClosed } }

    func send(_ text: String) async throws {
        try await connection?.writeAndFlush(ByteBuffer(string: text))
    }

    func startReading() async throws {
        guard let connection else { return }
        try await connection.setOption(.autoRead, value: true).get()
        connection.read()
    }

    func close() async {
        try? await connection?.close()
    }

    /// Waits until `condition` holds of the received text or the connection closed;
    /// gives up after `seconds`. Returns whether `condition` held.
    func wait(seconds: Double = 10, until condition: @escaping @Sendable (String, Bool) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            let (text, closed, version) = state.withLock { (String(buffer: $0.received), $0.isClosed, $0.version) }
            if condition(text, closed) { return true }
            if closed { return false }
            await waitForChange(after: version, until: deadline)
        }
        return state.withLock { condition(String(buffer: $0.received), $0.isClosed) }
    }

    /// Waits until `text` has arrived (false if it did not within `seconds`).
    func wait(for text: String, seconds: Double = 10) async -> Bool {
        await wait(seconds: seconds) { received, _ in received.contains(text) }
    }

    /// Waits until the server closed the connection.
    func waitForClose(seconds: Double = 10) async -> Bool {
        await wait(seconds: seconds) { _, closed in closed }
    }

    private func update(_ change: (inout State) -> Void) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            change(&state)
            state.version += 1
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Returns at the first change after `version`, or at `deadline` at the latest.
    private func waitForChange(after version: Int, until deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let changed = self.state.withLock { state -> Bool in
                        guard state.version == version else { return true }
                        state.waiter = continuation
                        return false
                    }
                    if changed { continuation.resume() }
                }
            }
            group.addTask {
                try? await Task.sleep(until: deadline)
                self.update { _ in }
            }
            await group.next()
            group.cancelAll()
        }
    }
}
#endif
