/// A failure talking to Redis, with what was being done.
public struct RedisError: Error, Hashable, CustomStringConvertible {
    /// The kind of failure; extensible without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The connection could not be made (refused, unreachable, timed out, auth failed).
        public static let connectionFailed = Code("connection failed")
        /// An established connection broke (EOF, I/O error).
        public static let connectionLost = Code("connection lost")
        /// Redis is known to be unreachable right now; the command was not attempted.
        public static let unavailable = Code("Redis unavailable")
        /// Redis answered the command with an error reply (`serverCode` is its first word).
        public static let serverError = Code("server error")
        /// Too many commands are already waiting; the command was not queued.
        public static let overloaded = Code("too many pending commands")
        /// The client was shut down.
        public static let shutdown = Code("client shut down")
        /// No answer (or no progress writing) before the deadline; the connection is dropped.
        public static let timedOut = Code("timed out")
        /// Redis sent something that breaks the protocol or its bounds (a reply larger than
        /// `maximumReplyBytes`, an endless line, a reply nobody asked for); the connection is dropped.
        public static let protocolViolation = Code("protocol violation")
        public var description: String { name }
    }

    /// Error-reply prefixes that mean "try again shortly": the dataset is loading after a
    /// restart, a script is running, a cluster slot is moving, a replica lost its master, or
    /// the server is a replica or a master cut off from its replicas (`READONLY`, `NOREPLICAS`:
    /// mid-failover; the command client then reconnects to the master), or a cluster node no
    /// longer serves the slot (`MOVED`: a client routed to that slot reconnects to its new
    /// master, a `ClusterCommandRouter` resends to it; `ASK`:
    /// the slot is being migrated). None of these ran the command, so a retry never does it twice.
    public static let transientServerCodes: Set<String> = [
        "LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY", "NOREPLICAS", "MOVED", "ASK",
    ]

    public let code: Code
    public let message: String
    /// For `.serverError` (and failures caused by one): the error reply's first word, e.g.
    /// `NOPERM`, `LOADING`, `ERR`.
    public let serverCode: String?

    public init(_ code: Code, _ message: String, serverCode: String? = nil) {
        self.code = code
        self.message = message
        self.serverCode = serverCode
    }

    /// An error reply from Redis, e.g. `LOADING Redis is loading the dataset in memory`.
    public init(serverReply text: String) {
        self.init(.serverError, text, serverCode: Self.firstWord(of: text))
    }

    /// Whether trying the same thing again after a short wait may succeed: the connection
    /// failed, broke, timed out or is known down, or Redis answered with a transient error
    /// (`transientServerCodes`). Not transient: other error replies (`ERR`, `NOPERM`,
    /// `WRONGTYPE`, `NOSCRIPT`...), protocol violations, `.overloaded` (retrying would add
    /// to the overload) and `.shutdown`.
    public var isTransient: Bool {
        switch code {
        case .connectionFailed, .connectionLost, .unavailable, .timedOut:
            return serverCode.map { Self.transientServerCodes.contains($0) } ?? true
        case .serverError:
            return serverCode.map { Self.transientServerCodes.contains($0) } ?? false
        default:
            return false
        }
    }

    public var description: String { message.isEmpty ? "\(code)" : "\(code): \(message)" }

    private static func firstWord(of text: String) -> String? {
        let word = text.prefix { $0 != " " && $0 != "\n" && $0 != "\r" }
        guard !word.isEmpty, word.count <= 32, word.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") }) else {
            return nil
        }
        return String(word)
    }
}
