/// A FIFO with O(1) amortized append and removal at the front (an array and a head index,
/// compacted when the consumed prefix is at least half of it).
struct PendingQueue<Element> {
    private var storage: [Element] = []
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { head == storage.count }

    mutating func append(_ element: Element) {
        storage.append(element)
    }

    mutating func popFirst() -> Element? {
        guard head < storage.count else { return nil }
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: storage.count <= 4096)
            head = 0
        } else if head >= 1024, head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Removes the newest element (to undo an `append`).
    mutating func removeLast() -> Element? {
        guard head < storage.count else { return nil }
        return storage.removeLast()
    }
}
