import Logging
import NIOCore
import SSEPOSIX
import Synchronization
import SSEStreamCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The node's listening socket, accepted on one thread of its own.
///
/// The accepted sockets go to `handOff` by their descriptors, a burst of them at a time, and each
/// becomes a SwiftNIO channel on an event loop (`ClientBootstrap.withConnectedSocket`). The
/// options every connection wants (TCP keepalive, `TCP_NODELAY`) are set once on the listening
/// socket, which Linux copies into every socket it accepts: a connect costs no keepalive
/// `setsockopt`s (SwiftNIO's bootstrap still sets `TCP_NODELAY` itself, its default). The broker accepts for itself,
/// rather than through `ServerBootstrap`, because a stream writes an event straight to its
/// socket while SwiftNIO holds nothing for it (see ``StreamConnectionHandler``), and only the
/// accepting side knows the descriptor. Running out of descriptors pauses accepting for a
/// moment (the connection waits in the backlog) instead of spinning.
final class SocketListener: Sendable {
    /// The port actually bound (useful with port 0).
    let port: Int
    private let descriptor: Int32
    private let wakeup: WakeupPipe
    private let phase = Mutex(Phase.bound)

    /// Where the listener is in its life; the descriptor is closed on the way to `stopped`.
    private enum Phase {
        /// Listening, nothing accepted yet.
        case bound
        case accepting(OwnedThread)
        /// Told to stop: the thread (if there was one) is ending or has ended.
        case stopped(OwnedThread?)
    }

    /// Binds and listens on `host:port`; nothing is accepted before `start`.
    init(host: String, port: Int, backlog: Int32 = 4096) throws {
        let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let family: Int32
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        case .unixDomainSocket: throw SocketListenerError("cannot listen on a unix socket address: \(host)")
        }
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SocketListenerError("socket() failed (errno \(errno))") }
        var one: Int32 = 1
        _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        Self.setConnectionOptions(descriptor)
        let bound = address.withSockAddr { pointer, size in bind(descriptor, pointer, socklen_t(size)) }
        guard bound == 0, listen(descriptor, backlog) == 0 else {
            let code = errno
            close(descriptor)
            throw SocketListenerError("cannot listen on \(host):\(port): \(String(cString: strerror(code)))")
        }
        do {
            self.wakeup = try WakeupPipe()
        } catch {
            close(descriptor)
            throw SocketListenerError("\(error)")
        }
        self.descriptor = descriptor
        self.port = Self.boundPort(of: descriptor) ?? port
    }

    private static func boundPort(of descriptor: Int32) -> Int? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard result == 0 else { return nil }
        return withUnsafePointer(to: &storage) { pointer -> Int? in
            switch Int32(pointer.pointee.ss_family) {
            case AF_INET:
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            case AF_INET6:
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            default:
                nil
            }
        }
    }

    /// Most sockets one call of `handOff` carries: a burst of connects wakes each event loop once
    /// per burst rather than once per connection, and the first of a burst waits for at most this
    /// many `accept`s.
    static let maxHandOffBurst = 32

    /// Starts the accepting thread; the accepted sockets (blocking, close-on-exec; SwiftNIO makes
    /// them non-blocking when it adopts them) go to `handOff` in bursts of 1 to
    /// ``maxHandOffBurst``, in accept order, and `handOff` then owns them. Only the first call
    /// starts it; after `stop()` it throws.
    func start(logger: Logger, handOff: @escaping @Sendable ([Int32]) -> Void) throws {
        let refusal: SocketListenerError? = phase.withLock { phase in
            switch phase {
            case .accepting: return nil
            case .stopped: return SocketListenerError("the listener is stopped")
            case .bound:
                // Spawned under the lock, so a concurrent `stop()` sees the thread to wait for.
                guard let thread = OwnedThread.spawn({ [self] in acceptLoop(logger: logger, handOff: handOff) }) else {
                    return SocketListenerError("cannot start the accepting thread")
                }
                phase = .accepting(thread)
                return nil
            }
        }
        if let refusal { throw refusal }
    }

    /// Stops accepting and closes the listening socket; returns once the thread has exited.
    /// New connections are refused from then on.
    ///
    /// Blocks the calling thread for as long as the accepting thread takes to notice (it is woken
    /// at once); from a task, the `async` overload waits without holding a thread.
    func stop() {
        let (thread, closes) = beginStop()
        thread?.join()
        if closes { _ = close(descriptor) }
    }

    /// Stops accepting and closes the listening socket; returns once the thread has exited,
    /// suspending meanwhile instead of blocking a thread of the cooperative pool.
    func stop() async {
        let (thread, closes) = beginStop()
        await thread?.join()
        if closes { _ = close(descriptor) }
    }

    /// Marks the listener stopped and wakes its thread: the thread to wait for, and whether this
    /// caller is the first (it closes the descriptor once the thread no longer polls it).
    private func beginStop() -> (thread: OwnedThread?, closes: Bool) {
        let outcome: (OwnedThread?, Bool) = phase.withLock { phase in
            switch phase {
            case .bound:
                phase = .stopped(nil)
                return (nil, true)
            case .accepting(let thread):
                phase = .stopped(thread)
                return (thread, true)
            case .stopped(let thread):
                return (thread, false)
            }
        }
        wakeup.signal()
        return outcome
    }

    /// TCP keepalive probes on an accepted socket: after `idle` seconds without traffic, a probe
    /// every `interval` seconds, and the connection fails after `count` unanswered ones. So the
    /// peer of a quiet stream that vanished (power loss, a dropped NAT entry) is found within
    /// about 60 s even with `--heartbeat 0`, and its connection and slot are freed.
    static let keepalive = (idle: Int32(30), interval: Int32(10), count: Int32(3))

    /// Sets keepalive (``keepalive``) and `TCP_NODELAY` (events leave at once, not held back to
    /// fill a segment) on the listening socket `socket`; Linux copies both into each socket it
    /// accepts, keepalive timer included.
    static func setConnectionOptions(_ socket: Int32) {
        var one: Int32 = 1
        var idle = keepalive.idle
        var interval = keepalive.interval
        var count = keepalive.count
        let size = socklen_t(MemoryLayout<Int32>.size)
        _ = setsockopt(socket, SOL_SOCKET, SO_KEEPALIVE, &one, size)
        _ = setsockopt(socket, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, size)
        _ = setsockopt(socket, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, size)
        _ = setsockopt(socket, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, size)
        _ = setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &one, size)
    }

    private var isStopping: Bool {
        phase.withLock { phase in
            if case .stopped = phase { return true }
            return false
        }
    }

    private func acceptLoop(logger: Logger, handOff: @Sendable ([Int32]) -> Void) {
        var lastWarning = ContinuousClock.now - .seconds(60)
        var burst: [Int32] = []
        burst.reserveCapacity(Self.maxHandOffBurst)
        // What was accepted goes on before the thread waits or pauses, and when a burst is full.
        func handOffBurst() {
            guard !burst.isEmpty else { return }
            handOff(burst)
            burst.removeAll(keepingCapacity: true)
        }
        while !isStopping {
            var descriptors = [
                pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakeup.readDescriptor, events: Int16(POLLIN), revents: 0),
            ]
            _ = poll(&descriptors, 2, -1)
            if descriptors[1].revents != 0 { wakeup.drain() }
            acceptPending: while !isStopping {
                let client = accept(descriptor, nil, nil)
                if client >= 0 {
                    // accept4 is not in Swift's Glibc module; the node never forks or execs, so
                    // the moment before FD_CLOEXEC is set does not matter. Nothing reads the
                    // socket before SwiftNIO has made it non-blocking.
                    _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                    burst.append(client)
                    if burst.count >= Self.maxHandOffBurst { handOffBurst() }
                    continue
                }
                let failure = errno
                handOffBurst()
                switch failure {
                case EINTR, ECONNABORTED, EPROTO:
                    continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors or memory: the connection waits in the backlog until
                    // some close. Pause instead of spinning on a socket that stays readable.
                    if lastWarning.duration(to: .now) > .seconds(10) {
                        lastWarning = .now
                        logger.warning("cannot accept a connection, pausing", metadata: ["error": "\(String(cString: strerror(failure)))"])
                    }
                    var wake = pollfd(fd: wakeup.readDescriptor, events: Int16(POLLIN), revents: 0)
                    _ = poll(&wake, 1, 50)
                    break acceptPending
                default:
                    break acceptPending
                }
            }
            handOffBurst()  // stopping in the middle of a burst: its sockets are still handed off
        }
    }
}

/// Why the listening socket could not be set up.
struct SocketListenerError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
