/// A RESP2 reply, copied out of hiredis into Swift values.
///
/// An error reply is a reply, not data: the accessors below return nil for `.error`, so a
/// caller that asks for a string, an integer or elements never takes an error text for a value.
public enum RedisReply: Sendable, Hashable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulkString([UInt8])
    case null
    case array([RedisReply])

    /// The reply as text, for bulk strings and status replies (never for errors).
    public var string: String? {
        switch self {
        case .bulkString(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .status(let text): return text
        default: return nil
        }
    }

    /// The reply as an integer, for integer replies.
    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The reply as an `Int`, for integer replies that fit.
    public var int: Int? {
        integer.flatMap { Int(exactly: $0) }
    }

    /// The elements, for array replies.
    public var elements: [RedisReply]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// The text of an error reply.
    public var errorText: String? {
        if case .error(let text) = self { return text }
        return nil
    }

    /// An error reply as a `RedisError` (`.serverError`, with `serverCode` and `isTransient`).
    public var serverError: RedisError? {
        errorText.map { RedisError(serverReply: $0) }
    }
}
