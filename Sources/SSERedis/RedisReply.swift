/// A RESP2 reply, copied out of hiredis into Swift values.
public enum RedisReply: Sendable, Hashable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulkString([UInt8])
    case null
    case array([RedisReply])

    /// The reply as text, for bulk strings and status replies.
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
}
