import Logging
import Synchronization
import Testing

@testable import SSEServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// ``SocketListener`` on a real loopback socket: what it hands off and with which options.
@Suite("Socket listener")
struct SocketListenerTests {
    /// An `Int32` socket option of `socket`, or nil when it cannot be read.
    static func option(_ socket: Int32, _ level: Int32, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(socket, level, name, &value, &size) == 0 else { return nil }
        return value
    }

    /// A blocking client socket connected to `127.0.0.1:port`, or -1.
    static func connectClient(port: Int) -> Int32 {
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard client >= 0 else { return -1 }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(truncatingIfNeeded: port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(client)
            return -1
        }
        return client
    }

    @Test("every accepted socket is handed off once, in bursts of at most maxHandOffBurst, with TCP_NODELAY, the node's keepalive and close-on-exec taken from the listener")
    func acceptedSocketsCarryTheListenersOptions() async throws {
        let listener = try SocketListener(host: "127.0.0.1", port: 0)
        let received = Mutex<(sockets: [Int32], bursts: [Int])>(([], []))
        try listener.start(logger: Logger(label: "test")) { sockets in
            received.withLock {
                $0.sockets += sockets
                $0.bursts.append(sockets.count)
            }
        }
        // More connects than one burst holds, made back to back so the backlog fills.
        let count = SocketListener.maxHandOffBurst * 3
        let clients = (0..<count).map { _ in Self.connectClient(port: listener.port) }
        #expect(clients.allSatisfy { $0 >= 0 })
        let deadline = ContinuousClock.now + .seconds(10)
        while received.withLock({ $0.sockets.count }) < count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let (sockets, bursts) = received.withLock { ($0.sockets, $0.bursts) }
        #expect(sockets.count == count, "every connection handed off")
        #expect(Set(sockets).count == sockets.count, "each once")
        #expect(bursts.allSatisfy { (1...SocketListener.maxHandOffBurst).contains($0) }, "bursts: \(bursts)")
        for socket in sockets {
            #expect(Self.option(socket, Int32(IPPROTO_TCP), TCP_NODELAY) == 1)
            #expect(Self.option(socket, SOL_SOCKET, SO_KEEPALIVE) == 1)
            #expect(Self.option(socket, Int32(IPPROTO_TCP), TCP_KEEPIDLE) == SocketListener.keepalive.idle)
            #expect(Self.option(socket, Int32(IPPROTO_TCP), TCP_KEEPINTVL) == SocketListener.keepalive.interval)
            #expect(Self.option(socket, Int32(IPPROTO_TCP), TCP_KEEPCNT) == SocketListener.keepalive.count)
            #expect(fcntl(socket, F_GETFD) & FD_CLOEXEC != 0)
            close(socket)
        }
        for client in clients where client >= 0 { close(client) }
        await listener.stop()
    }
}
