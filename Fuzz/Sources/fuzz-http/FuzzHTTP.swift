import Dispatch
import FuzzSupport
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SSEAuth
import SSERedis
@testable import SSEServer
@testable import SSEStreamCore
import Synchronization

/// The HTTP request path: the node's real pipeline (`HTTPPipeline`) with real `BrokerServices`
/// on a thread-safe testing channel, pointed at a Redis that does not exist (port 1: the
/// subscriber is never started, publishes fail fast with 503). Bytes in, split where the
/// fuzzer says; bytes out, which must be well-formed HTTP/1.x responses (`HTTPResponseCheck`).
///
/// The first input byte chooses the node (bit 0: open, or with a publish key and a JWT key) and
/// the chunk size (the other bits, 1...128 bytes); the rest is what the client sends. After it,
/// the clock jumps past every timeout, then the client goes away.
@main
enum FuzzHTTP {
    static func main() { FuzzDriver.run { data, count in fuzzHTTP(data, count) } }
}

/// Two nodes, each on its own testing loop, built once and shared by every input.
final class Nodes: Sendable {
    let open: (loop: NIOAsyncTestingEventLoop, services: BrokerServices)
    let keyed: (loop: NIOAsyncTestingEventLoop, services: BrokerServices)

    init() async throws {
        var logger = Logger(label: "fuzz.http")
        logger.logLevel = .critical
        func node(_ configure: (inout BrokerConfiguration) -> Void) async throws -> (NIOAsyncTestingEventLoop, BrokerServices) {
            var configuration = BrokerConfiguration(host: "127.0.0.1", port: 5000, redis: try RedisConfiguration(url: "redis://127.0.0.1:1/0"), threads: 1)
            configuration.maxPayloadBytes = 4096
            configuration.maxHeadBytes = 2048
            configure(&configuration)
            let loop = NIOAsyncTestingEventLoop()
            let services = try await BrokerServices.make(configuration: configuration, group: loop, logger: logger)
            return (loop, services)
        }
        open = try await node { _ in }
        keyed = try await node {
            $0.access = AccessConfiguration(tokenKey: .hmacSecret("fuzz-secret-fuzz-secret-fuzz-secret"), publishKey: "fuzz-key")
            $0.corsOrigins = ["https://app.example"]
        }
    }

    static let shared: Nodes = {
        let result = Mutex<Nodes?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                let nodes = try await Nodes()
                result.withLock { $0 = nodes }
            } catch {
                FuzzCheck.require(false, "cannot build the nodes: \(error)")
            }
            done.signal()
        }
        done.wait()
        guard let nodes = result.withLock({ $0 }) else {
            FuzzCheck.require(false, "no nodes")
            preconditionFailure("unreachable")
        }
        return nodes
    }()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let input = FuzzCheck.bytes(data, count)
    guard let control = input.first else { return 0 }
    let nodes = Nodes.shared
    let node = control & 1 == 0 ? nodes.open : nodes.keyed
    let chunkSize = Int(control >> 1) + 1
    let request = Array(input.dropFirst())
    let output = Mutex<[UInt8]>([])
    let done = DispatchSemaphore(value: 0)
    Task {
        // Only publishes (Redis's thread answers) and the keyed node (an access check task) have
        // answers that come from off the loop and need waiting for.
        let patient = control & 1 == 1 || HTTPResponseCheck.find(Array("POST".utf8), in: request, from: 0) != nil
        let bytes = await exchange(request, chunkSize: chunkSize, patient: patient, loop: node.loop, services: node.services)
        output.withLock { $0 = bytes }
        done.signal()
    }
    done.wait()
    let bytes = output.withLock { $0 }
    let statuses = HTTPResponseCheck.check(bytes)
    FuzzCheck.require(statuses.allSatisfy { $0 != 500 }, "a 500 answer: \(FuzzCheck.describe(bytes))")
    // The client is gone: no stream of it is left, nor a subscription it wanted.
    FuzzCheck.require(node.services.hub.connectedCount == 0, "a stream outlived its connection: \(FuzzCheck.describe(bytes))")
    FuzzCheck.require(node.services.hub.subscriber.wantedChannels.isEmpty, "a channel is still wanted after its last client left")
    return 0
}

/// Sends `request` in chunks through a fresh connection of the node and returns all it wrote.
func exchange(_ request: [UInt8], chunkSize: Int, patient: Bool, loop: NIOAsyncTestingEventLoop, services: BrokerServices) async -> [UInt8] {
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
            try HTTPPipeline.configure(channel.pipeline.syncOperations, services: services, socket: -1)
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
