import NIOCore
import NIOPosix
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A TLS connection to a server, offered to a blocking client as a plain connected socket.
///
/// `open` makes a `socketpair(2)`: the client keeps one end (`clientDescriptor`) and reads and
/// writes cleartext there as if it were the TCP socket. SwiftNIO wraps the other end and glues
/// it to a TCP channel carrying `NIOSSLClientHandler` (both on `TLSEventLoop`). So the client's
/// own `poll()` deadlines, buffers and bounds stay exactly as on plain TCP; TLS costs one
/// decrypt and one socketpair hop per batch in each direction.
///
/// Ownership: the caller owns `clientDescriptor` and closes it (closing it also ends the
/// tunnel). The tunnel owns the rest; `close()` ends it at once.
public final class TLSTunnel: Sendable {
    /// The client's end of the socketpair: connected, blocking, cleartext.
    public let clientDescriptor: Int32
    private let serverChannel: Channel
    private let localChannel: Channel
    private let recordedFailure: TunnelFailure

    private init(clientDescriptor: Int32, serverChannel: Channel, localChannel: Channel, failure: TunnelFailure) {
        self.clientDescriptor = clientDescriptor
        self.serverChannel = serverChannel
        self.localChannel = localChannel
        self.recordedFailure = failure
    }

    /// Why the tunnel broke after it was opened (a TLS alert, a reset...), or nil.
    public var failure: String? { recordedFailure.text }

    /// Closes both channels; the client then reads EOF on its end.
    public func close() {
        serverChannel.close(promise: nil)
        localChannel.close(promise: nil)
    }

    /// Connects to `host:port`, completes the TLS handshake and returns the tunnel, all within
    /// `timeoutMilliseconds` (a server that accepts and never answers the handshake is cut off
    /// at the deadline). Blocks the calling thread: never call it on an event loop.
    ///
    /// An IP address host is sent no SNI and is checked against the certificate's IP address
    /// SANs; `configuration.serverName` replaces the host for both.
    public static func open(
        host: String,
        port: Int,
        configuration: TLSTunnelConfiguration,
        timeoutMilliseconds: Int
    ) throws(TLSTunnelError) -> TLSTunnel {
        let started = NIODeadline.now()
        let timeout = max(1, timeoutMilliseconds)
        let context = try TLSContextCache.shared.context(for: configuration)
        let name = configuration.serverName ?? host
        let isAddress = (try? SocketAddress(ipAddress: name, port: 0)) != nil
        let sniName: String? = isAddress ? nil : name
        let target = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"

        var descriptors: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, socketPairType, 0, &descriptors) == 0 else {
            throw TLSTunnelError(.resources, "socketpair failed (errno \(errno))")
        }
        let clientEnd = descriptors[0]
        let tunnelEnd = descriptors[1]

        let loop = TLSEventLoop.group.next()
        let localChannel: Channel
        do {
            // NIO owns `tunnelEnd` from here, also when this fails after taking it.
            localChannel = try ClientBootstrap(group: loop).withConnectedSocket(tunnelEnd).wait()
        } catch {
            closeDescriptor(clientEnd)
            throw TLSTunnelError(.resources, "cannot wrap the tunnel's socket: \(error)")
        }

        let failure = TunnelFailure()
        let handshake = loop.makePromise(of: Void.self)
        let connected = ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(Int64(timeout)))
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                do {
                    let tls = try NIOSSLClientHandler(context: context, serverHostname: sniName)
                    let watcher = TLSHandshakeWatcher(promise: handshake, expectedName: name)
                    try channel.pipeline.syncOperations.addHandlers(tls, watcher)
                    let bound = NIOLoopBound(watcher, eventLoop: channel.eventLoop)
                    let deadline = channel.eventLoop.scheduleTask(deadline: started + .milliseconds(Int64(timeout))) {
                        bound.value.timeOut(after: timeout)
                    }
                    handshake.futureResult.whenComplete { _ in deadline.cancel() }
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: host, port: port)
        connected.whenFailure { error in
            handshake.fail(TLSTunnelError(.connectFailed, TLSTunnelError.reason(for: error)))
        }
        let glued = handshake.futureResult.flatMap {
            connected
        }.flatMapThrowing { serverChannel -> Channel in
            let (toServer, toClient) = TunnelGlueHandler.matchedPair(failure: failure)
            try serverChannel.pipeline.syncOperations.addHandler(toServer)
            try localChannel.pipeline.syncOperations.addHandler(toClient)
            return serverChannel
        }
        do {
            let serverChannel = try glued.wait()
            return TLSTunnel(clientDescriptor: clientEnd, serverChannel: serverChannel, localChannel: localChannel, failure: failure)
        } catch {
            connected.whenSuccess { $0.close(promise: nil) }
            localChannel.close(promise: nil)
            closeDescriptor(clientEnd)
            if let error = error as? TLSTunnelError {
                throw TLSTunnelError(error.code, "TLS to \(target): \(error.message)")
            }
            throw TLSTunnelError(.handshakeFailed, "TLS to \(target): \(TLSTunnelError.reason(for: error))")
        }
    }
}

#if canImport(Darwin)
private let socketPairType = SOCK_STREAM
#else
private let socketPairType = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
#endif

/// `close(2)`, which `TLSTunnel.close()` hides inside the type.
private func closeDescriptor(_ descriptor: Int32) {
    _ = close(descriptor)
}
