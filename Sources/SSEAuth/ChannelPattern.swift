/// A channel grant: an exact name, or a glob where `*` matches any run of characters
/// (dots included), so `user.42.*` grants `user.42.inbox` and `user.42.a.b`.
public struct ChannelPattern: Sendable, Hashable, CustomStringConvertible {
    private let parts: [Substring]
    private let text: String

    public init(_ text: String) {
        self.text = text
        self.parts = text.split(separator: "*", omittingEmptySubsequences: false)
    }

    public var description: String { text }

    /// Whether `channel` is granted.
    public func matches(_ channel: String) -> Bool {
        guard parts.count > 1 else { return channel == text }
        // First part is a prefix, last a suffix, the middle ones appear in order between them.
        var rest = Substring(channel)
        guard rest.hasPrefix(parts[0]) else { return false }
        rest = rest.dropFirst(parts[0].count)
        let last = parts[parts.count - 1]
        for part in parts.dropFirst().dropLast() where !part.isEmpty {
            guard let range = rest.firstRange(of: part) else { return false }
            rest = rest[range.upperBound...]
        }
        return rest.count >= last.count && rest.hasSuffix(last)
    }
}
