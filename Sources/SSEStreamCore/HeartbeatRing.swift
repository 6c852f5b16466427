/// Something a ``HeartbeatRing`` holds: it keeps its own slot so removal is O(1).
package protocol HeartbeatRingMember: AnyObject {
    /// The member's index in its ring, or -1 when it is in none. Managed by the ring.
    var ringSlot: Int { get set }
}

/// Spreads one heartbeat per member per interval evenly over the interval.
///
/// A round lasts one interval. At a fraction `f` of the round, the first `f × count` members
/// have had their heartbeat; each timer tick takes the members up to that mark. So a node
/// with 20,000 idle streams writes a few dozen heartbeats per tick instead of thousands at
/// once, and an event published meanwhile never waits behind a wall of heartbeats.
///
/// Members `[0, cursor)` are done this round. Removal keeps that true (a done member may
/// move within the done part, a pending one within the pending part), so a member present for
/// a whole round gets exactly one heartbeat in it; one added mid-round joins the pending part.
package struct HeartbeatRing<Member: HeartbeatRingMember> {
    private(set) var members: [Member] = []
    /// Members before this index had their heartbeat this round.
    private(set) var cursor = 0

    package var count: Int { members.count }

    package mutating func insert(_ member: Member) {
        guard member.ringSlot < 0 else { return }
        member.ringSlot = members.count
        members.append(member)
    }

    package mutating func remove(_ member: Member) {
        let slot = member.ringSlot
        guard slot >= 0, slot < members.count, members[slot] === member else { return }
        member.ringSlot = -1
        var hole = slot
        if slot < cursor {
            // Fill the hole with the last done member; the hole moves to the first pending slot.
            cursor -= 1
            if cursor != hole {
                move(from: cursor, to: hole)
                hole = cursor
            }
        }
        let last = members.count - 1
        if hole != last { move(from: last, to: hole) }
        members.removeLast()
    }

    /// The members due at `fraction` (0...1) of the round, marked done.
    package mutating func takeDue(atFraction fraction: Double) -> ArraySlice<Member> {
        let clamped = fraction.isNaN ? 0 : min(max(fraction, 0), 1)
        let mark = min(members.count, Int((clamped * Double(members.count)).rounded(.up)))
        guard mark > cursor else { return [] }
        defer { cursor = mark }
        return members[cursor..<mark]
    }

    /// Starts a new round: every member is pending again.
    package mutating func startRound() {
        cursor = 0
    }

    private mutating func move(from source: Int, to destination: Int) {
        let member = members[source]
        member.ringSlot = destination
        members[destination] = member
    }
}
