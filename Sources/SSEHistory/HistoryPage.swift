import SSEWire

/// One bounded page of a replay: the events of all requested channels after a cursor, in
/// position order, up to a boundary every channel agrees on.
public struct HistoryPage: Sendable {
    /// Events after the cursor, in position order: positions are stream entry ids, payloads the
    /// exact bytes that were published.
    public let events: [(position: HistoryPosition, channel: String, payload: [UInt8])]
    /// Channels whose history has a gap after the cursor, with the reason.
    public let gaps: [(channel: String, gap: HistoryGap)]
    /// Where the next page starts, nil when this page was the last.
    public let next: HistoryPosition?

    public init(events: [(position: HistoryPosition, channel: String, payload: [UInt8])], gaps: [(channel: String, gap: HistoryGap)], next: HistoryPosition?) {
        self.events = events
        self.gaps = gaps
        self.next = next
    }

    /// What one channel's part of a page script returned.
    struct ChannelRead {
        let channel: String
        let gap: HistoryGap?
        /// The entries that carry a payload.
        let entries: [(position: HistoryPosition, payload: [UInt8])]
        /// The newest entry read, with or without a payload.
        let last: HistoryPosition?
        let more: Bool
    }

    /// Merges the channels' reads into one page.
    ///
    /// A channel that returned a full page may have more entries than it returned, interleaved
    /// with other channels' later ones; so the page ends at the earliest last entry of such a
    /// channel, and the next page starts there (later entries are read again, never skipped).
    /// Each page moves the cursor forward by at least one event, so a replay ends.
    static func merge(
        channels: [ChannelRead]
    ) -> HistoryPage {
        var boundary: HistoryPosition?
        for read in channels where read.more {
            guard let last = read.last else { continue }
            boundary = boundary.map { min($0, last) } ?? last
        }
        var events: [(position: HistoryPosition, channel: String, payload: [UInt8])] = []
        for read in channels {
            for entry in read.entries where boundary.map({ entry.position <= $0 }) ?? true {
                events.append((entry.position, read.channel, entry.payload))
            }
        }
        events.sort { $0.position < $1.position }
        let gaps = channels.compactMap { read in read.gap.map { (read.channel, $0) } }
        return HistoryPage(events: events, gaps: gaps, next: boundary)
    }
}
