/// Where a multi-channel stream stands when history positions are counted per channel (a
/// Redis Cluster: each channel's counter lives in the channel's own slot): one position per
/// channel, carried in the stream's own `id:` line so one `Last-Event-ID` resumes every channel.
///
/// Text form: `FINGERPRINT.P1.P2…`, where FINGERPRINT is 8 lowercase hex digits naming the
/// channel set (FNV-1a over the sorted names, so the order of `channel=` in the URL does not
/// matter) and each P is the position of one channel in sorted order (`EPOCH-SEQUENCE`) or `-`
/// for a channel the stream has no position in yet. A single position (`EPOCH-SEQUENCE`) never
/// holds a `.`, so the two forms never mix. An id for another channel set is not this stream's
/// (its fingerprint or its count differs) and resumes nothing.
public struct ChannelPositions: Sendable, Hashable, CustomStringConvertible {
    /// The channels, sorted by their bytes.
    public let channels: [ChannelName]
    /// Per channel, in `channels`' order, its position if known.
    public private(set) var positions: [HistoryPosition?]

    /// No position yet on any of `channels` (duplicates are dropped).
    public init(channels: some Sequence<ChannelName>) {
        let sorted = Array(Set(channels)).sorted()
        self.channels = sorted
        self.positions = Array(repeating: nil, count: sorted.count)
    }

    /// Parses `text` for exactly `channels`; nil when it is not such an id: another form,
    /// another channel set, a bad position, or longer than `maximumLength(channelCount:)`.
    /// Linear in the text's length.
    public init?(_ text: some StringProtocol, channels: some Sequence<ChannelName>) {
        self.init(channels: channels)
        let utf8 = Substring(text).utf8
        guard utf8.count <= Self.maximumLength(channelCount: self.channels.count) else { return nil }
        var parts = utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).makeIterator()
        guard let fingerprint = parts.next(), Array(fingerprint) == Array(Self.fingerprintText(of: self.channels).utf8) else { return nil }
        var index = 0
        while let part = parts.next() {
            guard index < positions.count else { return nil }
            if part.count == 1, part.first == UInt8(ascii: "-") {
                positions[index] = nil
            } else {
                guard let position = HistoryPosition(Substring(part)) else { return nil }
                positions[index] = position
            }
            index += 1
        }
        guard index == positions.count else { return nil }
    }

    /// The longest text for `channelCount` channels: the fingerprint and, per channel, a dot
    /// and two 19-digit numbers with a dash.
    public static func maximumLength(channelCount: Int) -> Int {
        8 + channelCount * 40
    }

    /// The position of `channel`, if the stream has one there.
    public func position(of channel: ChannelName) -> HistoryPosition? {
        index(of: channel).flatMap { positions[$0] }
    }

    /// Sets `channel`'s position (a channel not in the set is ignored).
    public mutating func set(_ position: HistoryPosition?, for channel: ChannelName) {
        guard let index = index(of: channel) else { return }
        positions[index] = position
    }

    /// Whether the stream has a position in every channel.
    public var isComplete: Bool { !positions.contains(nil) }

    private func index(of channel: ChannelName) -> Int? {
        // Binary search: the channels are sorted, and a stream has at most a few dozen.
        var low = 0
        var high = channels.count
        while low < high {
            let middle = (low + high) / 2
            if channels[middle] < channel {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low < channels.count && channels[low] == channel ? low : nil
    }

    public var description: String {
        var text = Self.fingerprintText(of: channels)
        for position in positions {
            text += "."
            text += position?.description ?? "-"
        }
        return text
    }

    /// FNV-1a (32 bits) over the sorted channels' bytes, each followed by a zero byte, as 8
    /// lowercase hex digits.
    static func fingerprintText(of sorted: [ChannelName]) -> String {
        var hash: UInt32 = 0x811C_9DC5
        for channel in sorted {
            for byte in channel.text.utf8 {
                hash ^= UInt32(byte)
                hash = hash &* 0x0100_0193
            }
            hash ^= 0
            hash = hash &* 0x0100_0193
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }
}
