import Testing

@testable import SSEHistory

@Suite("PublishBatchQueues: group commit per channel, bounded, in order")
struct PublishBatchQueuesTests {
    typealias Queues = PublishBatchQueues<String>

    static func requests(_ batch: [Queues.Entry]?) -> [String]? { batch?.map(\.request) }

    @Test("a lone publish goes at once; one that comes while its channel's call is in flight waits; another channel does not")
    func loneGoesAtOnce() {
        var queues = Queues(maximumEvents: 4, maximumBytes: 100, maximumWaitingEvents: 10)
        guard case .send(let first) = queues.submit("a1", events: 1, bytes: 1, channel: "a") else { Issue.record("not sent"); return }
        #expect(Self.requests(first) == ["a1"])
        guard case .queued = queues.submit("a2", events: 1, bytes: 1, channel: "a") else { Issue.record("not queued"); return }
        guard case .send(let other) = queues.submit("b1", events: 1, bytes: 1, channel: "b") else { Issue.record("b waited"); return }
        #expect(Self.requests(other) == ["b1"])
        #expect(Self.requests(queues.completed(channel: "a")) == ["a2"])
        #expect(queues.completed(channel: "a") == nil, "nothing waits: idle")
        #expect(queues.completed(channel: "b") == nil)
        #expect(queues.busyChannels == 0)
        guard case .send = queues.submit("a3", events: 1, bytes: 1, channel: "a") else { Issue.record("idle channel waited"); return }
    }

    @Test("what waited goes out in submission order, whole requests within the event and byte bounds, always at least one")
    func batchesWithinBounds() {
        var queues = Queues(maximumEvents: 4, maximumBytes: 100, maximumWaitingEvents: 1000)
        _ = queues.submit("first", events: 1, bytes: 1, channel: "c")
        let waiting: [(String, Int, Int)] = [("r1", 1, 10), ("r2", 2, 10), ("r3", 2, 10), ("big", 9, 10), ("r5", 1, 60), ("r6", 1, 50), ("r7", 1, 1)]
        for (name, events, bytes) in waiting {
            guard case .queued = queues.submit(name, events: events, bytes: bytes, channel: "c") else { Issue.record("\(name) not queued"); return }
        }
        #expect(queues.waitingEvents(on: "c") == 17)
        #expect(Self.requests(queues.completed(channel: "c")) == ["r1", "r2"], "4 events at most")
        #expect(Self.requests(queues.completed(channel: "c")) == ["r3"], "the big one does not fit behind r3")
        #expect(Self.requests(queues.completed(channel: "c")) == ["big"], "a request past the bound goes alone")
        #expect(Self.requests(queues.completed(channel: "c")) == ["r5"], "100 bytes at most")
        #expect(Self.requests(queues.completed(channel: "c")) == ["r6", "r7"])
        #expect(queues.waitingEvents(on: "c") == 0)
        #expect(queues.completed(channel: "c") == nil)
    }

    @Test("waiting events are bounded per channel: beyond the bound a submit is refused, a lone large request is not")
    func bounded() {
        var queues = Queues(maximumEvents: 4, maximumBytes: 100, maximumWaitingEvents: 5)
        _ = queues.submit("inflight", events: 1, bytes: 1, channel: "d")
        guard case .queued = queues.submit("huge", events: 50, bytes: 1, channel: "d") else { Issue.record("a lone large request refused"); return }
        guard case .refused = queues.submit("more", events: 1, bytes: 1, channel: "d") else { Issue.record("past the bound accepted"); return }
        #expect(Self.requests(queues.completed(channel: "d")) == ["huge"])
        for index in 0..<5 {
            guard case .queued = queues.submit("e\(index)", events: 1, bytes: 1, channel: "d") else { Issue.record("e\(index) refused"); return }
        }
        guard case .refused = queues.submit("sixth", events: 1, bytes: 1, channel: "d") else { Issue.record("sixth accepted"); return }
        #expect(Self.requests(queues.completed(channel: "d")) == ["e0", "e1", "e2", "e3"])
        guard case .queued = queues.submit("room", events: 1, bytes: 1, channel: "d") else { Issue.record("room again refused"); return }
    }

    @Test("a long queue drained batch by batch keeps its order (the head index compacts)")
    func longQueue() {
        var queues = Queues(maximumEvents: 3, maximumBytes: 1_000_000, maximumWaitingEvents: 100_000)
        _ = queues.submit("x", events: 1, bytes: 1, channel: "l")
        for index in 0..<10_000 { _ = queues.submit("\(index)", events: 1, bytes: 1, channel: "l") }
        var seen: [String] = []
        while let batch = queues.completed(channel: "l") { seen += batch.map(\.request) }
        #expect(seen == (0..<10_000).map(String.init))
    }
}
