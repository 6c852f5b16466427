import Testing

@testable import SSEStreamCore

@Suite("Heartbeat ring")
struct HeartbeatRingTests {
    final class Member: HeartbeatRingMember {
        let id: Int
        var ringSlot = -1
        init(_ id: Int) { self.id = id }
    }

    /// A deterministic generator, so a failure can be replayed.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test("a round gives every member one heartbeat, spread evenly over the interval")
    func evenRound() {
        var ring = HeartbeatRing<Member>()
        let members = (0..<1000).map(Member.init)
        for member in members { ring.insert(member) }
        var seen: [Int: Int] = [:]
        for tick in 1...300 {
            let due = ring.takeDue(atFraction: Double(tick) / 300)
            // 1000 members over 300 ticks: never more than 4 in one tick.
            #expect(due.count <= 4)
            for member in due { seen[member.id, default: 0] += 1 }
        }
        #expect(seen.count == 1000)
        #expect(seen.values.allSatisfy { $0 == 1 })
        #expect(ring.takeDue(atFraction: 1).isEmpty)
        ring.startRound()
        #expect(ring.takeDue(atFraction: 1).count == 1000)
    }

    @Test("one member gets its heartbeat at the start of each round")
    func singleMember() {
        var ring = HeartbeatRing<Member>()
        ring.insert(Member(1))
        #expect(ring.takeDue(atFraction: 0.01).count == 1)
        #expect(ring.takeDue(atFraction: 0.99).isEmpty)
        ring.startRound()
        #expect(ring.takeDue(atFraction: 0.01).count == 1)
    }

    @Test("members coming and going mid-round: those present all round get exactly one, the removed none after removal")
    func churn() {
        var random = SplitMix(state: 42)
        var ring = HeartbeatRing<Member>()
        var present: [Int: Member] = [:]
        var nextID = 0
        for _ in 0..<500 {
            let member = Member(nextID)
            nextID += 1
            present[member.id] = member
            ring.insert(member)
        }
        for _ in 0..<20 {
            ring.startRound()
            let atStart = Set(present.keys)
            var removed: Set<Int> = []
            var counts: [Int: Int] = [:]
            for tick in 1...100 {
                for _ in 0..<Int.random(in: 0...6, using: &random) {
                    if Bool.random(using: &random), let victim = present.values.randomElement(using: &random) {
                        ring.remove(victim)
                        present[victim.id] = nil
                        removed.insert(victim.id)
                        #expect(victim.ringSlot == -1)
                    } else {
                        let member = Member(nextID)
                        nextID += 1
                        present[member.id] = member
                        ring.insert(member)
                    }
                }
                for member in ring.takeDue(atFraction: Double(tick) / 100) {
                    #expect(!removed.contains(member.id))
                    counts[member.id, default: 0] += 1
                }
            }
            #expect(counts.values.allSatisfy { $0 == 1 })
            for id in atStart.subtracting(removed) {
                #expect(counts[id] == 1, "member \(id) was present all round")
            }
            #expect(ring.count == present.count)
            for (slot, member) in ring.members.enumerated() {
                #expect(member.ringSlot == slot)
            }
        }
    }

    @Test("removing a member twice, or one never added, changes nothing")
    func harmlessRemoval() {
        var ring = HeartbeatRing<Member>()
        let kept = Member(1)
        let gone = Member(2)
        ring.insert(kept)
        ring.insert(gone)
        ring.remove(gone)
        ring.remove(gone)
        ring.remove(Member(3))
        ring.insert(kept)
        #expect(ring.count == 1)
        #expect(ring.members.first === kept)
        #expect(kept.ringSlot == 0)
    }
}
