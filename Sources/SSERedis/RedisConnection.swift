import CHiredis
import SSERedisTransport

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One hiredis connection, used from exactly one thread that the Redis layer owns.
///
/// The socket is non-blocking once connected: every wait is a `poll()` with a deadline, so a
/// stalled Redis (SIGSTOP, a dead network path, a full socket buffer) fails a call in bounded
/// time instead of blocking its thread for good. hiredis only parses and buffers. Replies are
/// bounded (`RedisConfiguration.maximumReplyBytes`, see `ReplyBudget`). The type is
/// deliberately not `Sendable`: it lives on the subscriber thread or the command thread and
/// nowhere else, never on an event loop. `AUTH` and `SELECT` are done in `connect`.
final class RedisConnection {
    /// Longest status, error or integer line accepted (hiredis rescans an unterminated line on
    /// every read, so an endless one would also cost quadratic time).
    static let maximumLineBytes = 64 * 1024
    /// A bulk or multi-bulk length line is at most 21 bytes (`-9223372036854775808`).
    static let maximumLengthLineBytes = 64

    private let context: UnsafeMutablePointer<redisContext>
    private let budget: UnsafeMutablePointer<ReplyBudget>
    private let maximumReplyBytes: Int
    /// With TLS: the tunnel whose client end hiredis reads and writes (`fileDescriptor`).
    private let tunnel: TLSTunnel?

    /// The socket, for `poll()`.
    var fileDescriptor: Int32 { context.pointee.fd }

    /// Whether commands are queued that the socket has not taken yet.
    private(set) var hasPendingOutput = false

    /// For a connection found through Sentinel: where and in which generation it was resolved.
    var sentinelStamp: SentinelTopology.Stamp?

    /// Whether this connection was resolved through Sentinel before the master may have
    /// changed: the caller drops it and connects (resolves) again.
    var isTopologyStale: Bool { sentinelStamp?.isStale ?? false }

    /// Bytes queued that the socket has not taken yet.
    var pendingOutputBytes: Int {
        guard let buffer = context.pointee.obuf else { return 0 }
        return sdslen(buffer)
    }

    private init(context: UnsafeMutablePointer<redisContext>, maximumReplyBytes: Int, tunnel: TLSTunnel?) {
        self.context = context
        self.maximumReplyBytes = maximumReplyBytes
        self.tunnel = tunnel
        self.budget = UnsafeMutablePointer<ReplyBudget>.allocate(capacity: 1)
        budget.initialize(to: ReplyBudget(limit: maximumReplyBytes))
    }

    deinit {
        redisFree(context)
        tunnel?.close()
        budget.deinitialize(count: 1)
        budget.deallocate()
    }

    /// Connects (within `connectTimeoutMilliseconds`), authenticates and selects the database
    /// (each within `commandTimeoutMilliseconds`).
    ///
    /// Name resolution (`getaddrinfo`) is the one wait without a deadline on plain TCP; use an
    /// address or a resolver that answers. With TLS (`configuration.tls`), hiredis gets one
    /// end of a `TLSTunnel` instead of a TCP socket: connect, resolution and handshake then
    /// share the connect deadline, and a `PING` checks that the server took the connection
    /// (with TLS 1.3 a refused client certificate only shows after the handshake).
    ///
    /// A `.cluster` endpoint is connected through the first of its seeds that takes the
    /// connection (`connectToCluster`).
    /// A `.sentinel` endpoint is resolved first (`SentinelResolver`, through `topology` when the
    /// caller holds one, else a topology of its own), then connected as the `.tcp` master found
    /// (over TLS too when the configuration has TLS options).
    /// `shouldStop` is asked between the resolver's attempts: a shutdown during a resolve
    /// against slow sentinels ends after the attempt in progress, not after all of them.
    static func connect(
        _ configuration: RedisConfiguration,
        topology: SentinelTopology? = nil,
        shouldStop: () -> Bool = { false }
    ) throws(RedisError) -> RedisConnection {
        if case .sentinel(let endpoint) = configuration.endpoint {
            let resolver = SentinelResolver(configuration: configuration, endpoint: endpoint, topology: topology ?? SentinelTopology(endpoint: endpoint))
            return try resolver.connect(shouldStop: shouldStop)
        }
        if case .cluster(let endpoint) = configuration.endpoint {
            return try connectToCluster(configuration, endpoint: endpoint, shouldStop: shouldStop)
        }
        let timeout = max(1, configuration.connectTimeoutMilliseconds)
        let raw: UnsafeMutablePointer<redisContext>?
        var tunnel: TLSTunnel?
        switch configuration.endpoint {
        case .tcp(let host, let port):
            if let tls = configuration.tls {
                let opened = try openTunnel(host: host, port: port, tls: tls, timeoutMilliseconds: timeout)
                raw = redisConnectFd(opened.clientDescriptor)
                if raw == nil { _ = close(opened.clientDescriptor) }
                tunnel = opened
            } else {
                raw = CHiredis_connectTCP(host, Int32(clamping: port), timeout)
            }
        case .unixSocket(let path):
            guard configuration.tls == nil else {
                throw RedisError(.connectionFailed, "TLS is for TCP endpoints, not unix sockets")
            }
            raw = CHiredis_connectUnix(path, timeout)
        case .sentinel:
            throw RedisError(.connectionFailed, "a Sentinel endpoint is resolved before it is connected")
        case .cluster:
            throw RedisError(.connectionFailed, "a cluster endpoint is connected through one of its nodes")
        }
        guard let raw else {
            tunnel?.close()
            throw RedisError(.connectionFailed, "cannot allocate a Redis context")
        }
        let connection = RedisConnection(context: raw, maximumReplyBytes: configuration.effectiveMaximumReplyBytes, tunnel: tunnel)
        if raw.pointee.err != 0 {
            throw RedisError(.connectionFailed, "\(configuration): \(connection.errorText)")
        }
        if case .tcp = configuration.endpoint, tunnel == nil {
            // TCP keepalive notices a peer that vanished without a FIN; unix sockets refuse it.
            _ = redisEnableKeepAlive(raw)
        }
        try connection.becomeNonBlocking()
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(max(1, configuration.commandTimeoutMilliseconds)))
        do throws(RedisError) {
            if let password = configuration.password {
                var arguments = ["AUTH"]
                if let username = configuration.username { arguments.append(username) }
                arguments.append(password)
                let reply = try connection.command(arguments, deadline: deadline)
                guard case .status = reply else {
                    throw RedisError(.connectionFailed, "AUTH failed: \(reply.errorText ?? "unexpected reply")")
                }
            }
            if configuration.database != 0 {
                let reply = try connection.command(["SELECT", String(configuration.database)], deadline: deadline)
                guard case .status = reply else {
                    throw RedisError(.connectionFailed, "SELECT \(configuration.database) failed: \(reply.errorText ?? "unexpected reply")")
                }
            }
            if tunnel != nil {
                let reply = try connection.command(["PING"], deadline: deadline)
                guard case .status = reply else {
                    throw RedisError(.connectionFailed, "PING failed: \(reply.errorText ?? "unexpected reply")")
                }
            }
        } catch {
            throw RedisError(.connectionFailed, error.message, serverCode: error.serverCode)
        }
        return connection
    }

    /// Makes the socket non-blocking and tells hiredis so (then EAGAIN is not an error).
    private func becomeNonBlocking() throws(RedisError) {
        // Kernel timeouts are useless once every wait is a poll with a deadline.
        _ = CHiredis_setTimeout(context, 0)
        let flags = fcntl(fileDescriptor, F_GETFL)
        guard flags >= 0, fcntl(fileDescriptor, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw RedisError(.connectionFailed, "cannot make the Redis socket non-blocking (errno \(errno))")
        }
        context.pointee.flags &= ~Int32(REDIS_BLOCK)
        guard let reader = context.pointee.reader, let table = BoundedReplyFunctions.table else {
            throw RedisError(.connectionFailed, "hiredis has no reply reader")
        }
        reader.pointee.fn = table
        reader.pointee.privdata = UnsafeMutableRawPointer(budget)
    }

    private var errorText: String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
    }

    /// With TLS, the tunnel's own reason follows hiredis's ("Server closed the connection").
    private func lostError(_ doing: String) -> RedisError {
        guard let reason = tunnel?.failure else {
            return RedisError(.connectionLost, "\(doing): \(errorText)")
        }
        return RedisError(.connectionLost, "\(doing): \(errorText) (TLS: \(reason))")
    }

    private static func openTunnel(
        host: String,
        port: Int,
        tls: RedisTLSOptions,
        timeoutMilliseconds: Int
    ) throws(RedisError) -> TLSTunnel {
        do {
            return try TLSTunnel.open(
                host: host, port: port, configuration: tls.tunnelConfiguration, timeoutMilliseconds: timeoutMilliseconds
            )
        } catch {
            throw RedisError(.connectionFailed, error.message)
        }
    }

    /// Sends a command and waits for its reply, all before `deadline`.
    func command(_ arguments: [String], deadline: ContinuousClock.Instant) throws(RedisError) -> RedisReply {
        try append(arguments.map { Array($0.utf8) })
        try flush(deadline: deadline)
        return try readReply(deadline: deadline)
    }

    /// Queues a command in the output buffer (binary-safe: explicit lengths). No I/O.
    func append(_ arguments: [[UInt8]]) throws(RedisError) {
        var joined: [UInt8] = []
        joined.reserveCapacity(arguments.reduce(0) { $0 &+ $1.count })
        var lengths: [Int] = []
        lengths.reserveCapacity(arguments.count)
        for argument in arguments {
            joined.append(contentsOf: argument)
            lengths.append(argument.count)
        }
        // A terminating byte that no length covers keeps the buffer non-empty, so it has an address.
        joined.append(0)
        guard let count = Int32(exactly: lengths.count) else {
            throw RedisError(.connectionLost, "too many arguments in one command")
        }
        let status: Int32 = joined.withUnsafeBufferPointer { buffer in
            guard let start = buffer.baseAddress else { return REDIS_ERR }
            let base = UnsafeRawPointer(start)
            var offset = 0
            var pointers: [UnsafePointer<CChar>?] = []
            pointers.reserveCapacity(lengths.count)
            for length in lengths {
                pointers.append((base + offset).assumingMemoryBound(to: CChar.self))
                offset += length
            }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { argvlen in
                    redisAppendCommandArgv(context, count, argv.baseAddress, argvlen.baseAddress)
                }
            }
        }
        guard status == REDIS_OK else { throw lostError("queueing a command") }
        hasPendingOutput = true
    }

    /// Writes what the socket takes now, without waiting; true once nothing is left.
    @discardableResult
    func writeAvailable() throws(RedisError) -> Bool {
        guard hasPendingOutput else { return true }
        var done: Int32 = 0
        guard redisBufferWrite(context, &done) == REDIS_OK else { throw lostError("writing to Redis") }
        hasPendingOutput = done == 0
        return done != 0
    }

    /// Writes everything queued, waiting for the socket at most until `deadline`.
    func flush(deadline: ContinuousClock.Instant) throws(RedisError) {
        while try !writeAvailable() {
            try wait(for: Int16(POLLOUT), until: deadline, doing: "writing to Redis")
        }
    }

    /// Writes everything queued; fails when the socket takes nothing for `stall`.
    func flush(stall: Duration) throws(RedisError) {
        var progress = ContinuousClock.now
        while true {
            let before = pendingOutputBytes
            if try writeAvailable() { return }
            if pendingOutputBytes < before { progress = .now }
            try wait(for: Int16(POLLOUT), until: progress.advanced(by: stall), doing: "writing to Redis")
        }
    }

    /// Waits until one reply is complete (at most until `deadline`) and returns it.
    func readReply(deadline: ContinuousClock.Instant) throws(RedisError) -> RedisReply {
        while true {
            if let reply = try takeBufferedRawReply() {
                defer { freeReplyObject(reply) }
                return RedisReply(reply)
            }
            try wait(for: Int16(POLLIN), until: deadline, doing: "reading from Redis")
            try readAvailable()
        }
    }

    /// Waits until one reply is complete and returns it; fails when no byte arrives for
    /// `stall` (a silent Redis), however long a reply that keeps arriving takes.
    func readReply(stall: Duration) throws(RedisError) -> RedisReply {
        while true {
            if let reply = try takeBufferedRawReply() {
                defer { freeReplyObject(reply) }
                return RedisReply(reply)
            }
            try wait(for: Int16(POLLIN), until: ContinuousClock.now.advanced(by: stall), doing: "reading from Redis")
            try readAvailable()
        }
    }

    /// Polls the socket for `events` until `deadline`. Readiness includes errors and hang-ups:
    /// the read or write that follows reports them.
    private func wait(for events: Int16, until deadline: ContinuousClock.Instant, doing: String) throws(RedisError) {
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else {
                throw RedisError(.timedOut, "\(doing): no progress before the deadline")
            }
            var descriptor = pollfd(fd: fileDescriptor, events: events, revents: 0)
            let ready = poll(&descriptor, 1, Int32(clamping: max(1, remaining.roundedUpMilliseconds)))
            if ready > 0 { return }
            if ready < 0, errno != EINTR {
                throw RedisError(.connectionLost, "\(doing): poll failed (errno \(errno))")
            }
        }
    }

    /// Does one `read()` into the reply reader, then checks what is buffered against the
    /// bounds. Call when `poll()` says the socket is readable (EAGAIN is harmless).
    func readAvailable() throws(RedisError) {
        guard redisBufferRead(context) == REDIS_OK else { throw lostError("reading from Redis") }
        try checkBufferedInput()
    }

    /// Fails when the unparsed input passes `maximumReplyBytes`, or when the item being parsed
    /// is a line that has run past its bound without an end.
    private func checkBufferedInput() throws(RedisError) {
        guard let reader = context.pointee.reader else { return }
        let position = reader.pointee.pos
        let length = reader.pointee.len
        guard length > position, let buffer = reader.pointee.buf else { return }
        let buffered = length - position
        if buffered > maximumReplyBytes {
            throw RedisError(.protocolViolation, "Redis sent a reply larger than \(maximumReplyBytes) bytes")
        }
        let index = Int(reader.pointee.ridx)
        guard index >= 0, index < 9 else { return }
        let type = withUnsafeBytes(of: reader.pointee.rstack) { raw in
            raw.bindMemory(to: redisReadTask.self)[index].type
        }
        let lineLimit: Int
        switch type {
        case REDIS_REPLY_STATUS, REDIS_REPLY_ERROR, REDIS_REPLY_INTEGER: lineLimit = Self.maximumLineBytes
        case REDIS_REPLY_STRING, REDIS_REPLY_ARRAY: lineLimit = Self.maximumLengthLineBytes
        default: return
        }
        guard buffered > lineLimit else { return }
        if memchr(buffer + position, 0x0D, lineLimit) == nil {
            throw RedisError(.protocolViolation, "Redis sent a reply line longer than \(lineLimit) bytes")
        }
    }

    /// Takes the next complete reply already read, without I/O; nil when none is complete yet.
    /// The caller must free the reply with `freeReplyObject`.
    func takeBufferedRawReply() throws(RedisError) -> UnsafeMutablePointer<redisReply>? {
        var raw: UnsafeMutableRawPointer?
        guard let reader = context.pointee.reader, redisReaderGetReply(reader, &raw) == REDIS_OK else {
            if budget.pointee.exceeded {
                throw RedisError(.protocolViolation, "Redis sent a reply larger than \(maximumReplyBytes) bytes")
            }
            throw RedisError(.protocolViolation, "protocol error in Redis reply: \(readerErrorText)")
        }
        return raw?.assumingMemoryBound(to: redisReply.self)
    }

    private var readerErrorText: String {
        guard let reader = context.pointee.reader else { return "no reader" }
        return withUnsafeBytes(of: reader.pointee.errstr) { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
    }

    /// Whether an idle connection (no replies outstanding) was closed by the server meanwhile:
    /// then its socket is readable (EOF or an error) although nothing is expected. Checked before
    /// reusing a connection, so a Redis restart between two commands costs no failed command.
    var isClosedByPeer: Bool {
        var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) != 0
    }
}

extension RedisReply {
    /// Copies a hiredis reply tree into Swift values. The tree is bounded by `ReplyBudget` and
    /// hiredis's nesting limit (7), and every count is read defensively.
    init(_ reply: UnsafeMutablePointer<redisReply>) {
        let node = reply.pointee
        switch node.type {
        case REDIS_REPLY_STATUS:
            self = .status(String(decoding: RedisReply.bytes(node), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: RedisReply.bytes(node), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            self = .integer(node.integer)
        case REDIS_REPLY_STRING:
            self = .bulkString(Array(RedisReply.bytes(node)))
        case REDIS_REPLY_ARRAY:
            let count = node.element == nil ? 0 : max(0, node.elements)
            var elements: [RedisReply] = []
            elements.reserveCapacity(count)
            for index in 0..<count {
                if let element = node.element?[index] {
                    elements.append(RedisReply(element))
                } else {
                    elements.append(.null)
                }
            }
            self = .array(elements)
        default:
            self = .null
        }
    }

    /// The bytes of a string, status or error reply, without copying.
    static func bytes(_ node: redisReply) -> UnsafeRawBufferPointer {
        guard let string = node.str, node.len > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: string, count: node.len)
    }
}

extension Duration {
    /// Whole milliseconds, rounded down; saturates instead of trapping.
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return seconds < 0 ? Int.min : Int.max }
        let (sum, overflowSum) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        guard !overflowSum else { return Int.max }
        return Int(clamping: sum)
    }

    /// Whole milliseconds, rounded up, so a poll never wakes just before its deadline.
    var roundedUpMilliseconds: Int {
        let down = milliseconds
        return self > .milliseconds(down) && down < Int.max ? down + 1 : down
    }
}
