import Dispatch
import FuzzSupport
import Logging
import NIOCore
import NIOEmbedded
import SSEAuth
import SSERedis
@testable import SSEServer
@testable import SSEStreamCore
import Synchronization

/// A node for the connection fuzz targets (`fuzz-http`, `fuzz-h2`): real `BrokerServices` on a
/// thread-safe testing loop, pointed at a Redis that does not exist (port 1: the subscriber is
/// never started, publishes fail fast with 503), and one client connection at a time on it.
public final class FuzzNode: Sendable {
    /// How a connection's handlers are installed.
    public enum Wiring: Sendable {
        /// `HTTPPipeline` alone: a cleartext listener without `--h2c`.
        case http1
        /// What `ConnectionPipeline` installs on an accepted cleartext connection: with
        /// `--h2c` (`http2.acceptsCleartext`), the preface sniffer, then HTTP/2 or HTTP/1.
        case accepted
    }

    let loop: NIOAsyncTestingEventLoop
    let services: BrokerServices

    private init(loop: NIOAsyncTestingEventLoop, services: BrokerServices) {
        self.loop = loop
        self.services = services
    }

    /// Two nodes, each on its own testing loop: one open, one with a publish key (`fuzz-key`),
    /// a JWT key and a CORS origin (`https://app.example`). `configure` adjusts both. Blocks
    /// until they are built; a target builds them once and shares them by every input.
    public static func pair(label: String, _ configure: @escaping @Sendable (inout BrokerConfiguration) -> Void = { _ in }) -> (open: FuzzNode, keyed: FuzzNode) {
        blocking {
            var logger = Logger(label: label)
            logger.logLevel = .critical
            func node(_ extra: (inout BrokerConfiguration) -> Void) async throws -> FuzzNode {
                var configuration = BrokerConfiguration(host: "127.0.0.1", port: 5000, redis: try RedisConfiguration(url: "redis://127.0.0.1:1/0"), threads: 1)
                configuration.maxPayloadBytes = 4096
                configuration.maxHeadBytes = 2048
                configure(&configuration)
                extra(&configuration)
                let loop = NIOAsyncTestingEventLoop()
                let services = try await BrokerServices.make(configuration: configuration, group: loop, logger: logger)
                return FuzzNode(loop: loop, services: services)
            }
            do {
                let open = try await node { _ in }
                let keyed = try await node {
                    $0.access = AccessConfiguration(tokenKey: .hmacSecret("fuzz-secret-fuzz-secret-fuzz-secret"), publishKey: "fuzz-key")
                    $0.corsOrigins = ["https://app.example"]
                }
                return (open, keyed)
            } catch {
                FuzzCheck.require(false, "cannot build the nodes: \(error)")
                preconditionFailure("unreachable")
            }
        }
    }

    /// Sends `request` in chunks of `chunkSize` through a fresh connection and returns all the
    /// node wrote. After the request, the clock jumps past every timeout, then the client goes
    /// away. `patient`: wait a little for answers that come from off the loop (Redis's thread,
    /// the access check's task) instead of only yielding.
    public func exchange(_ request: [UInt8], chunkSize: Int, patient: Bool, wiring: Wiring) -> [UInt8] {
        blocking { await self.exchangeAsync(request, chunkSize: chunkSize, patient: patient, wiring: wiring) }
    }

    /// The client is gone: no stream of it is left, nor a subscription it wanted.
    public func requireNothingLeft(after output: [UInt8]) {
        FuzzCheck.require(services.hub.connectedCount == 0, "a stream outlived its connection: \(FuzzCheck.describe(output))")
        FuzzCheck.require(services.hub.subscriber.wantedChannels.isEmpty, "a channel is still wanted after its last client left")
    }

    private func exchangeAsync(_ request: [UInt8], chunkSize: Int, patient: Bool, wiring: Wiring) async -> [UInt8] {
        let loop = self.loop
        let services = self.services
        let channel = NIOAsyncTestingChannel(loop: loop)
        var output: [UInt8] = []
        func collect() async {
            while let buffer = try? await channel.readOutbound(as: ByteBuffer.self) {
                output.append(contentsOf: buffer.readableBytesView)
            }
        }
        /// Runs the loop until nothing new is written for a few rounds. Answers from Redis's thread
        /// (a refused connection to port 1) or from the access check's task arrive a little later:
        /// `patient` rounds wait for them with short sleeps, the others only yield.
        func settle(patient: Bool) async {
            var quiet = 0
            var rounds = 0
            while quiet < 3 && rounds < 100 {
                rounds += 1
                let before = output.count
                await loop.run()
                await collect()
                if output.count == before {
                    quiet += 1
                    if patient { try? await Task.sleep(for: .microseconds(300)) } else { await Task.yield() }
                } else {
                    quiet = 0
                }
            }
        }
        do {
            try await loop.executeInContext {
                try channel.pipeline.syncOperations.addHandler(SocketWriteSemantics())
                switch wiring {
                case .http1:
                    try HTTPPipeline.configure(channel.pipeline.syncOperations, services: services, socket: -1)
                case .accepted:
                    try ConnectionPipeline.configure(channel, services: services, socket: -1, tls: nil)
                }
            }
            try await channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 5000)).get()
            channel.remoteAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 40000)
        } catch {
            FuzzCheck.require(false, "cannot set up the connection: \(error)")
        }
        var offset = 0
        while offset < request.count, channel.isActive {
            let end = min(request.count, offset + chunkSize)
            _ = try? await channel.writeInbound(ByteBuffer(bytes: request[offset..<end]))
            offset = end
            await loop.run()
            await collect()
        }
        await settle(patient: patient)
        // Past the request and idle timeouts: every connection that is not a stream is closed.
        await loop.advanceTime(by: .seconds(120))
        await settle(patient: false)
        _ = try? await channel.close()
        await settle(patient: false)
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await collect()
        return output
    }
}

/// Runs `body` on a task and waits for it: libFuzzer calls a target synchronously.
private func blocking<Result: Sendable>(_ body: @escaping @Sendable () async -> Result) -> Result {
    let result = Mutex<Result?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let value = await body()
        result.withLock { $0 = value }
        done.signal()
    }
    done.wait()
    guard let value = result.withLock({ $0 }) else { preconditionFailure("the task returned nothing") }
    return value
}

/// Fails writes once the channel is closed, as a socket channel does (a testing channel would
/// record them as sent), so the output is what a client could receive.
final class SocketWriteSemantics: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard context.channel.isActive else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension SocketWriteSemantics: Sendable {}
