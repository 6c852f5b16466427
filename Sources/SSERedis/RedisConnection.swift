import CHiredis

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One hiredis connection, used from exactly one thread that the Redis layer owns.
///
/// Every call may block on the socket, so this type is deliberately not `Sendable`: it lives
/// on the subscriber thread or the command thread and nowhere else, never on an event loop.
/// `AUTH` and `SELECT` are done in `connect`.
final class RedisConnection {
    private let context: UnsafeMutablePointer<redisContext>

    /// The socket, for `poll()`.
    var fileDescriptor: Int32 { context.pointee.fd }

    private init(context: UnsafeMutablePointer<redisContext>) {
        self.context = context
    }

    deinit {
        redisFree(context)
    }

    /// Connects, authenticates and selects the database.
    static func connect(_ configuration: RedisConfiguration) throws(RedisError) -> RedisConnection {
        let timeout = configuration.connectTimeoutMilliseconds
        let raw: UnsafeMutablePointer<redisContext>?
        switch configuration.endpoint {
        case .tcp(let host, let port):
            raw = CHiredis_connectTCP(host, Int32(port), timeout)
        case .unixSocket(let path):
            raw = CHiredis_connectUnix(path, timeout)
        }
        guard let raw else {
            throw RedisError(.connectionFailed, "cannot allocate a Redis context")
        }
        let connection = RedisConnection(context: raw)
        if raw.pointee.err != 0 {
            throw RedisError(.connectionFailed, "\(configuration): \(connection.errorText)")
        }
        if case .tcp = configuration.endpoint {
            // TCP keepalive notices a peer that vanished without a FIN; unix sockets refuse it.
            _ = redisEnableKeepAlive(raw)
        }
        _ = CHiredis_setTimeout(raw, configuration.commandTimeoutMilliseconds)
        if let password = configuration.password {
            var arguments = ["AUTH"]
            if let username = configuration.username { arguments.append(username) }
            arguments.append(password)
            if case .error(let message) = try connection.command(arguments) {
                throw RedisError(.connectionFailed, "AUTH failed: \(message)")
            }
        }
        if configuration.database != 0 {
            if case .error(let message) = try connection.command(["SELECT", String(configuration.database)]) {
                throw RedisError(.connectionFailed, "SELECT \(configuration.database) failed: \(message)")
            }
        }
        return connection
    }

    private var errorText: String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
    }

    private func lostError(_ doing: String) -> RedisError {
        RedisError(.connectionLost, "\(doing): \(errorText)")
    }

    /// Turns the read/write timeouts off: a subscription may stay silent for hours, and a
    /// timed-out read would poison the context. Liveness is checked with PING instead.
    func disableTimeouts() {
        _ = CHiredis_setTimeout(context, 0)
    }

    /// Sends a command and waits for its reply.
    func command(_ arguments: [String]) throws(RedisError) -> RedisReply {
        try append(arguments.map { Array($0.utf8) })
        try flush()
        return try readReply()
    }

    /// Queues a command in the output buffer (binary-safe: explicit lengths).
    func append(_ arguments: [[UInt8]]) throws(RedisError) {
        var joined: [UInt8] = []
        joined.reserveCapacity(arguments.reduce(0) { $0 + $1.count })
        var lengths: [Int] = []
        lengths.reserveCapacity(arguments.count)
        for argument in arguments {
            joined.append(contentsOf: argument)
            lengths.append(argument.count)
        }
        // A terminating byte that no length covers keeps the buffer non-empty, so it has an address.
        joined.append(0)
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
                    redisAppendCommandArgv(context, Int32(lengths.count), argv.baseAddress, argvlen.baseAddress)
                }
            }
        }
        guard status == REDIS_OK else { throw lostError("queueing a command") }
    }

    /// Writes everything queued (blocking until the kernel has taken it).
    func flush() throws(RedisError) {
        var done: Int32 = 0
        while done == 0 {
            guard redisBufferWrite(context, &done) == REDIS_OK else { throw lostError("writing to Redis") }
        }
    }

    /// Blocks until one reply is available and returns it.
    func readReply() throws(RedisError) -> RedisReply {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw lostError("reading from Redis") }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(reply) }
        return RedisReply(reply)
    }

    /// Does one `read()` into the reply reader. Call only when `poll()` says the socket is readable.
    func readAvailable() throws(RedisError) {
        guard redisBufferRead(context) == REDIS_OK else { throw lostError("reading from Redis") }
    }

    /// Takes the next complete reply already read, without I/O; nil when none is complete yet.
    /// The caller must free the reply with `freeReplyObject`.
    func takeBufferedRawReply() throws(RedisError) -> UnsafeMutablePointer<redisReply>? {
        var raw: UnsafeMutablePointer<redisReply>?
        guard CHiredis_takeBufferedReply(context, &raw) == REDIS_OK else {
            throw RedisError(.connectionLost, "protocol error in Redis reply")
        }
        return raw
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
    /// Copies a hiredis reply tree into Swift values.
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
            var elements: [RedisReply] = []
            elements.reserveCapacity(node.elements)
            for index in 0..<node.elements {
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
