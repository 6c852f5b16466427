import SSEWire
import Testing

@testable import SSEHistory

@Suite("HistoryResumePlan: which ids count, decided from the counter alone")
struct HistoryResumePlanTests {
    let state = HistoryState(current: HistoryPosition(epoch: 200, sequence: 50), previous: .init(epoch: 100, high: 80))

    @Test("an id of the current epoch up to the counter replays after it")
    func current() {
        #expect(HistoryResumePlan.plan(resumingAfter: HistoryPosition(epoch: 200, sequence: 10), state: state) == .replay(after: HistoryPosition(epoch: 200, sequence: 10), gap: nil))
        #expect(HistoryResumePlan.plan(resumingAfter: HistoryPosition(epoch: 200, sequence: 50), state: state) == .replay(after: HistoryPosition(epoch: 200, sequence: 50), gap: nil))
    }

    @Test("past the counter: unknown, and the client stands at the counter (what comes next is new to it)")
    func pastCounter() {
        #expect(HistoryResumePlan.plan(resumingAfter: HistoryPosition(epoch: 200, sequence: 51), state: state) == .unknown(position: HistoryPosition(epoch: 200, sequence: 50)))
    }

    @Test("the previous epoch replays what Redis kept, with 'lost' only below the highest position seen in it")
    func previous() {
        #expect(HistoryResumePlan.plan(resumingAfter: HistoryPosition(epoch: 100, sequence: 60), state: state) == .replay(after: HistoryPosition(epoch: 100, sequence: 60), gap: .lost))
        #expect(HistoryResumePlan.plan(resumingAfter: HistoryPosition(epoch: 100, sequence: 80), state: state) == .replay(after: HistoryPosition(epoch: 100, sequence: 80), gap: nil))
    }

    @Test("not the broker's form, an unknown epoch, 0-0, or no history at all: unknown, and no position")
    func unknown() {
        for position in [nil, HistoryPosition(epoch: 0, sequence: 0), HistoryPosition(epoch: 150, sequence: 1), HistoryPosition(epoch: 300, sequence: 1)] {
            #expect(HistoryResumePlan.plan(resumingAfter: position, state: state) == .unknown(position: nil))
        }
        #expect(HistoryResumePlan.plan(resumingAfter: HistoryPosition(epoch: 200, sequence: 1), state: HistoryState(current: nil, previous: nil)) == .unknown(position: nil))
    }
}

@Suite("HistoryPage.merge: bounded pages that never skip an event")
struct HistoryPageTests {
    static func read(_ channel: String, _ sequences: [UInt64], more: Bool, gap: HistoryGap? = nil) -> HistoryPage.ChannelRead {
        let entries = sequences.map { (position: HistoryPosition(epoch: 1, sequence: $0), payload: Array("\($0)".utf8)) }
        return HistoryPage.ChannelRead(channel: channel, gap: gap, entries: entries, last: entries.last?.position, more: more)
    }

    @Test("a full channel bounds the page at its last entry; the other channel's later entries wait for the next page")
    func boundary() {
        let page = HistoryPage.merge(channels: [Self.read("a", [2, 4, 6], more: true), Self.read("b", [3, 9], more: false, gap: .trimmed)])
        #expect(page.events.map(\.position.sequence) == [2, 3, 4, 6])
        #expect(page.next == HistoryPosition(epoch: 1, sequence: 6))
        #expect(page.gaps.map(\.channel) == ["b"])
    }

    @Test("no channel full: the last page, every entry in position order")
    func last() {
        let page = HistoryPage.merge(channels: [Self.read("a", [5], more: false), Self.read("b", [1, 7], more: false)])
        #expect(page.events.map(\.position.sequence) == [1, 5, 7])
        #expect(page.next == nil)
    }

    @Test("every page moves past at least one event, so a replay always ends")
    func progress() {
        var cursor: UInt64 = 0
        let all: [UInt64] = Array(1...40)
        var seen: [UInt64] = []
        for _ in 0..<100 {
            let a = all.filter { $0 > cursor && $0.isMultiple(of: 2) }.prefix(3)
            let b = all.filter { $0 > cursor && !$0.isMultiple(of: 2) }.prefix(3)
            let page = HistoryPage.merge(channels: [
                Self.read("a", Array(a), more: a.count == 3), Self.read("b", Array(b), more: b.count == 3),
            ])
            seen += page.events.map(\.position.sequence)
            guard let next = page.next else { break }
            #expect(next.sequence > cursor)
            cursor = next.sequence
        }
        #expect(seen == all)
    }
}
