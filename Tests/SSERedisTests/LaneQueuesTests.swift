@testable import SSERedis
import Testing

@Suite("Command lanes: bounded per lane, served in turn")
struct LaneQueuesTests {
    @Test("a flood on one lane gets at most its share of each batch; the other lane's commands go out in the first batch")
    func fairShare() {
        var queues = LaneQueues<String>(lanes: 2, capacity: 1000)
        var accepted = 0
        for index in 0..<1000 where queues.append("flood-\(index)", lane: 0) { accepted += 1 }
        for index in 0..<3 where queues.append("other-\(index)", lane: 1) { accepted += 1 }
        #expect(accepted == 1003)
        let batch = queues.take(maximum: 8)
        #expect(batch.count == 8)
        #expect(batch.filter { $0.hasPrefix("other") } == ["other-0", "other-1", "other-2"], "in order, all in the first batch")
        #expect(batch.filter { $0.hasPrefix("flood") } == ["flood-0", "flood-1", "flood-2", "flood-3", "flood-4"])
        #expect(queues.count == 995)
    }

    @Test("a full lane refuses only its own appends; out-of-range lanes use the nearest")
    func bounds() {
        var queues = LaneQueues<Int>(lanes: 2, capacity: 2)
        let outcomes = [
            queues.append(1, lane: 0), queues.append(2, lane: -5), queues.append(3, lane: 0),
            queues.append(4, lane: 1), queues.append(5, lane: 99), queues.append(6, lane: 1),
        ]
        #expect(outcomes == [true, true, false, true, true, false])
        #expect(queues.take(maximum: 10) == [1, 4, 2, 5])
        #expect(queues.take(maximum: 10).isEmpty)
    }

    @Test("FIFO within a lane across many takes; takeAll empties every lane")
    func order() {
        var queues = LaneQueues<Int>(lanes: 3, capacity: 10_000)
        for value in 0..<5000 { _ = queues.append(value, lane: value % 3) }
        var seen: [[Int]] = [[], [], []]
        while true {
            let batch = queues.take(maximum: 7)
            if batch.isEmpty { break }
            for value in batch { seen[value % 3].append(value) }
        }
        for lane in 0..<3 { #expect(seen[lane] == Array(stride(from: lane, to: 5000, by: 3))) }
        _ = queues.append(1, lane: 2)
        #expect(queues.takeAll() == [1])
    }
}
