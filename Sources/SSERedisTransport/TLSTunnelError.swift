/// Why a TLS tunnel could not be opened, or why it broke, in words an operator can act on.
///
/// Never carries key material: only host names, file paths and the TLS library's reason.
public struct TLSTunnelError: Error, Hashable, CustomStringConvertible {
    /// The kind of failure.
    public enum Code: Sendable, Hashable {
        /// A certificate or key file is missing or malformed.
        case badFile
        /// The TCP connection failed (refused, unreachable, name not found, timed out).
        case connectFailed
        /// The server's certificate was refused (untrusted, expired, wrong name) or the
        /// handshake failed otherwise.
        case handshakeFailed
        /// Connect plus handshake took longer than the deadline.
        case timedOut
        /// Local resources (socketpair, channel) could not be had.
        case resources
    }

    public let code: Code
    /// What went wrong, e.g. "certificate not trusted (unknown CA)".
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
