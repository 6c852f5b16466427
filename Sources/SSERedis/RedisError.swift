/// A failure talking to Redis, with what was being done.
public struct RedisError: Error, Hashable, CustomStringConvertible {
    /// The kind of failure; extensible without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The connection could not be made (refused, unreachable, timed out, auth failed).
        public static let connectionFailed = Code("connection failed")
        /// An established connection broke (EOF, I/O error, protocol error, timeout).
        public static let connectionLost = Code("connection lost")
        /// Redis is known to be unreachable right now; the command was not attempted.
        public static let unavailable = Code("Redis unavailable")
        /// Redis answered the command with an error reply.
        public static let serverError = Code("server error")
        /// Too many commands are already waiting.
        public static let overloaded = Code("too many pending commands")
        /// The client was shut down.
        public static let shutdown = Code("client shut down")
        public var description: String { name }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message.isEmpty ? "\(code)" : "\(code): \(message)" }
}
