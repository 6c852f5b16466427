/// Where an event stands in the broker's history: `EPOCH-SEQUENCE`, the event's SSE `id`.
///
/// On one Redis (and a cluster's `history=shared`) the sequence comes from one counter shared by
/// all channels, so positions order events totally across channels and one `Last-Event-ID`
/// resumes a multi-channel stream. With history per channel (a cluster's default) each channel
/// counts on its own, and a multi-channel stream carries one position per channel
/// (`ChannelPositions`). The
/// epoch (milliseconds when the counter was created) changes if Redis loses the counter, so a
/// stale id is recognised instead of resuming from the wrong place. The text doubles as the
/// Redis Stream entry id. Ids of this form are reserved for history: other publishers' ids are
/// opaque to the broker.
public struct HistoryPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let epoch: UInt64
    public let sequence: UInt64

    public init(epoch: UInt64, sequence: UInt64) {
        self.epoch = epoch
        self.sequence = sequence
    }

    /// Parses `EPOCH-SEQUENCE` (ASCII digits on both sides); nil for anything else.
    public init?(_ text: some StringProtocol) {
        let utf8 = Substring(text).utf8
        guard let dash = utf8.firstIndex(of: UInt8(ascii: "-")),
            let epoch = Self.number(utf8[..<dash]),
            let sequence = Self.number(utf8[utf8.index(after: dash)...])
        else { return nil }
        self.init(epoch: epoch, sequence: sequence)
    }

    private static func number(_ digits: Substring.UTF8View.SubSequence) -> UInt64? {
        guard !digits.isEmpty, digits.count <= 19,
            digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        return UInt64(String(decoding: digits, as: UTF8.self))
    }

    public var description: String { "\(epoch)-\(sequence)" }

    public static func < (lhs: HistoryPosition, rhs: HistoryPosition) -> Bool {
        (lhs.epoch, lhs.sequence) < (rhs.epoch, rhs.sequence)
    }
}

extension ServerSentEvent {
    /// The event's history position, when its id has the broker's form.
    public var historyPosition: HistoryPosition? {
        id.flatMap(HistoryPosition.init)
    }
}
