/// A channel name compared as Redis compares it: byte for byte.
///
/// Swift's `String` equality is canonical equivalence, so `"é"` (U+00E9) and `"e\u{301}"` are
/// one `String` key but two Redis channels (SUBSCRIBE and PUBLISH take bytes). Every table keyed
/// by channel uses this type, so two such names never share a subscription or a client list.
/// The text is kept as given (Swift strings keep their scalars), so its UTF-8 is what goes to Redis.
public struct ChannelName: Sendable, Hashable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The name as text; its `utf8` is exactly the bytes Redis sees.
    public let text: String

    public init(_ text: String) {
        self.text = text
    }

    /// A name from the bytes Redis sent (invalid UTF-8 replaced by U+FFFD: such a channel can
    /// only have been subscribed by someone else, never by a node of ours, whose names are text).
    public init(bytes: some Collection<UInt8>) {
        self.text = String(decoding: bytes, as: UTF8.self)
    }

    public init(stringLiteral value: String) {
        self.text = value
    }

    /// The bytes Redis sees.
    public var bytes: [UInt8] { Array(text.utf8) }

    public var description: String { text }

    public static func == (lhs: ChannelName, rhs: ChannelName) -> Bool {
        lhs.text.utf8.elementsEqual(rhs.text.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        var copy = text
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Byte order (code point order), as Redis and Python sort names.
    public static func < (lhs: ChannelName, rhs: ChannelName) -> Bool {
        lhs.text.utf8.lexicographicallyPrecedes(rhs.text.utf8)
    }
}
