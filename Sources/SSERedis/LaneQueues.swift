/// Bounded FIFO lanes served in turn: what keeps one caller's flood from starving another.
///
/// Each lane holds at most `capacity` elements; `take` removes up to `maximum`, one from each
/// non-empty lane in turn (continuing where the last `take` stopped), so with k busy lanes each
/// gets at least `⌊maximum / k⌋` of every batch, and a full lane refuses only its own appends.
struct LaneQueues<Element> {
    private var lanes: [PendingQueue<Element>]
    private var next = 0
    let capacity: Int

    init(lanes: Int, capacity: Int) {
        self.lanes = Array(repeating: PendingQueue(), count: max(1, lanes))
        self.capacity = max(1, capacity)
    }

    var laneCount: Int { lanes.count }
    var count: Int { lanes.reduce(0) { $0 + $1.count } }

    /// The lane index `lane` maps to (out-of-range lanes use the nearest one).
    func clamp(_ lane: Int) -> Int { min(max(lane, 0), lanes.count - 1) }

    /// Appends to `lane`; false (nothing appended) when that lane is full.
    mutating func append(_ element: Element, lane: Int) -> Bool {
        let index = clamp(lane)
        guard lanes[index].count < capacity else { return false }
        lanes[index].append(element)
        return true
    }

    /// Undoes the last `append` to `lane`.
    mutating func removeLast(lane: Int) {
        _ = lanes[clamp(lane)].removeLast()
    }

    /// Up to `maximum` elements, one per non-empty lane in turn.
    mutating func take(maximum: Int) -> [Element] {
        var batch: [Element] = []
        var idle = 0
        while batch.count < maximum, idle < lanes.count {
            let index = next
            next = (index + 1) % lanes.count
            if let element = lanes[index].popFirst() {
                batch.append(element)
                idle = 0
            } else {
                idle += 1
            }
        }
        return batch
    }

    /// Everything, lane by lane.
    mutating func takeAll() -> [Element] {
        var all: [Element] = []
        for index in lanes.indices {
            while let element = lanes[index].popFirst() { all.append(element) }
        }
        return all
    }
}
