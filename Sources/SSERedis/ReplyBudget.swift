import CHiredis

/// What the reply hiredis is building may cost, and what it costs so far.
///
/// hiredis 0.14.1 builds a reply tree as the bytes arrive and trusts the sizes it reads: a
/// multi-bulk count up to `INT_MAX` is allocated at once (`calloc(count, 8)`, 16 GB for
/// `*2147483647`), and every element of a huge array becomes a 48-byte node however short it
/// is on the wire (`:1\r\n` is 4 bytes), so a hostile or broken peer could make a node allocate
/// gigabytes, and hiredis aborts the process when an allocation fails. The reader's builder
/// functions are therefore wrapped (`BoundedReplyFunctions`): each node is charged to this
/// budget, reset at every new top-level reply, and a node past the limit is refused, which
/// hiredis reports as a reader error; the connection then fails with a clear message.
struct ReplyBudget {
    /// Most bytes one reply may cost (strings plus nodes plus element arrays).
    var limit: Int
    /// Charged so far to the reply being built.
    var used = 0
    /// Set when a node was refused; the reader is in error from then on.
    var exceeded = false
}

/// hiredis's reply builders with a `ReplyBudget` check in front of each.
///
/// The budget is the reader's `privdata`, which hiredis copies into every read task.
enum BoundedReplyFunctions {
    /// What one reply node costs besides its string or element array (the 48-byte
    /// `redisReply` and the allocator's overhead).
    static let nodeCost = 64

    /// hiredis's own builders, taken once from a throwaway reader.
    private static let defaults: redisReplyObjectFunctions? = {
        guard let reader = redisReaderCreate() else { return nil }
        defer { redisReaderFree(reader) }
        return reader.pointee.fn?.pointee
    }()

    /// The wrapped table, allocated once and never freed (readers point at it).
    // nonisolated(unsafe): written once by the lazy initializer, read-only afterwards.
    nonisolated(unsafe) static let table: UnsafeMutablePointer<redisReplyObjectFunctions>? = {
        guard let defaults else { return nil }
        let table = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
        table.initialize(to: defaults)
        table.pointee.createString = { task, string, length in
            guard BoundedReplyFunctions.charge(task, length, plus: BoundedReplyFunctions.nodeCost) else { return nil }
            return BoundedReplyFunctions.defaults?.createString?(task, string, length)
        }
        table.pointee.createArray = { task, elements in
            let count = max(0, Int(elements))
            let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<UnsafeMutableRawPointer>.size)
            guard !overflow, BoundedReplyFunctions.charge(task, bytes, plus: BoundedReplyFunctions.nodeCost) else { return nil }
            return BoundedReplyFunctions.defaults?.createArray?(task, elements)
        }
        table.pointee.createInteger = { task, value in
            guard BoundedReplyFunctions.charge(task, 0, plus: BoundedReplyFunctions.nodeCost) else { return nil }
            return BoundedReplyFunctions.defaults?.createInteger?(task, value)
        }
        table.pointee.createNil = { task in
            guard BoundedReplyFunctions.charge(task, 0, plus: BoundedReplyFunctions.nodeCost) else { return nil }
            return BoundedReplyFunctions.defaults?.createNil?(task)
        }
        return table
    }()

    /// Charges `bytes + overhead` to the task's budget; false (and the budget marked exceeded)
    /// when that passes its limit. A task without a parent starts a new reply.
    private static func charge(_ task: UnsafePointer<redisReadTask>?, _ bytes: Int, plus overhead: Int) -> Bool {
        guard let task, let raw = task.pointee.privdata else { return true }
        let budget = raw.assumingMemoryBound(to: ReplyBudget.self)
        if task.pointee.parent == nil { budget.pointee.used = 0 }
        let (cost, overflowA) = bytes.addingReportingOverflow(overhead)
        let (total, overflowB) = budget.pointee.used.addingReportingOverflow(cost)
        guard !overflowA, !overflowB, total <= budget.pointee.limit else {
            budget.pointee.exceeded = true
            return false
        }
        budget.pointee.used = total
        return true
    }
}
