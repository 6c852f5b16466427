import NIOCore
import NIOPosix
import Synchronization

/// A TCP relay on 127.0.0.1 in front of a real redis-server that can make a subscription
/// "connected but silent": `silence()` drops the pub/sub pushes (`message`, `pmessage`) Redis
/// sends to the relay's clients and passes everything else (confirmations, PONG, command
/// replies), exactly the state PING cannot see. `refuseNew` closes new connections at once, to
/// hold a node away from Redis; `retarget` sends new connections to another redis-server while
/// the old ones stay where they are (a split brain). `stop()` closes the listener and every
/// relayed connection.
final class SilencingRelay: Sendable {
    let port: Int
    private let listener: any Channel
    private let control: Control

    /// What the relay's handlers share with the test.
    final class Control: Sendable {
        struct State {
            var redisPort: Int
            var silenced = false
            var refuseNew = false
            var dropped = 0
            var accepted = 0
            var refused = 0
            var channels: [ObjectIdentifier: any Channel] = [:]
        }

        let state: Mutex<State>

        init(redisPort: Int) {
            state = Mutex(State(redisPort: redisPort))
        }
    }

    private init(port: Int, listener: any Channel, control: Control) {
        self.port = port
        self.listener = listener
        self.control = control
    }

    /// Listens on a free loopback port, relaying every connection to `redisPort`.
    static func start(redisPort: Int) async throws -> SilencingRelay {
        let control = Control(redisPort: redisPort)
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                let (refuse, target) = control.state.withLock { state in
                    if state.refuseNew { state.refused += 1 } else { state.accepted += 1 }
                    return (state.refuseNew, state.redisPort)
                }
                if refuse { return inbound.close() }
                return ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: "127.0.0.1", port: target)
                    .flatMapThrowing { outbound in
                        control.register(inbound)
                        control.register(outbound)
                        try inbound.pipeline.syncOperations.addHandler(Forward(partner: outbound, control: control, scan: false))
                        try outbound.pipeline.syncOperations.addHandler(Forward(partner: inbound, control: control, scan: true))
                    }
                    .flatMapError { error in inbound.close().flatMapThrowing { throw error } }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        guard let port = listener.localAddress?.port else {
            try? await listener.close()
            throw TestFailure("the relay did not bind")
        }
        return SilencingRelay(port: port, listener: listener, control: control)
    }

    /// Drops every pub/sub push from now on (true), or passes them again (false).
    func silence(_ silenced: Bool = true) {
        control.state.withLock { $0.silenced = silenced }
    }

    /// Closes new connections at once (true), or relays them again (false).
    func refuseNew(_ refuse: Bool) {
        control.state.withLock { $0.refuseNew = refuse }
    }

    /// Relays new connections to `redisPort` from now on; open ones stay where they are.
    func retarget(redisPort: Int) {
        control.state.withLock { $0.redisPort = redisPort }
    }

    /// Pushes dropped so far.
    var droppedMessages: Int { control.state.withLock { $0.dropped } }
    /// Connections relayed, and closed at once under `refuseNew`, so far.
    var connectionCounts: (accepted: Int, refused: Int) { control.state.withLock { ($0.accepted, $0.refused) } }

    /// Closes the listener and every relayed connection.
    func stop() async {
        try? await listener.close()
        let channels = control.state.withLock { Array($0.channels.values) }
        for channel in channels { try? await channel.close() }
    }

    /// Forwards what one side reads to the other; from Redis (`scan`), frame by frame, dropping
    /// pushes while silenced.
    fileprivate final class Forward: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private let partner: any Channel
        private let control: Control
        private let scan: Bool
        private var scanner = RESPFrameScanner()

        init(partner: any Channel, control: Control, scan: Bool) {
            self.partner = partner
            self.control = control
            self.scan = scan
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data)
            guard scan else {
                partner.writeAndFlush(bytes, promise: nil)
                return
            }
            do {
                let frames = try scanner.feed(bytes.readableBytesView)
                let silenced = control.state.withLock { $0.silenced }
                var out = context.channel.allocator.buffer(capacity: bytes.readableBytes)
                var dropped = 0
                for frame in frames {
                    if silenced, frame.isPush { dropped += 1 } else { out.writeBytes(frame.bytes) }
                }
                if dropped > 0 { control.state.withLock { $0.dropped += dropped } }
                if out.readableBytes > 0 { partner.writeAndFlush(out, promise: nil) }
            } catch {
                context.close(promise: nil)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            control.unregister(context.channel)
            partner.close(promise: nil)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension SilencingRelay.Forward: Sendable {}

extension SilencingRelay.Control {
    func register(_ channel: any Channel) {
        state.withLock { $0.channels[ObjectIdentifier(channel)] = channel }
    }

    func unregister(_ channel: any Channel) {
        state.withLock { $0.channels[ObjectIdentifier(channel)] = nil }
    }
}

/// Runs `body` with a relay to `redis`, stopped when `body` returns or throws.
func withSilencingRelay<Result>(to redis: RedisServerProcess, _ body: (SilencingRelay) async throws -> Result) async throws -> Result {
    let relay = try await SilencingRelay.start(redisPort: redis.port)
    return try await ensuring({ try await body(relay) }, finally: { await relay.stop() })
}
