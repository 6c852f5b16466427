import CHiredis
@testable import SSERedis

/// Reads `input` as RESP the way a connection does (hiredis's reader with the node's reply
/// bounds, `BoundedReplyFunctions`, at most `limit` bytes) and hands each complete reply, up to
/// `maximumReplies`, to `body`; the reply is freed after `body` returns. Input the reader refuses
/// ends the reading, as it ends a connection.
public func forEachBoundedReply(in input: [UInt8], limit: Int, maximumReplies: Int, _ body: (UnsafeMutablePointer<redisReply>) -> Void) {
    guard let reader = redisReaderCreate(), let table = BoundedReplyFunctions.table else { return }
    defer { redisReaderFree(reader) }
    let budget = UnsafeMutablePointer<ReplyBudget>.allocate(capacity: 1)
    budget.initialize(to: ReplyBudget(limit: limit))
    defer { budget.deallocate() }
    reader.pointee.fn = table
    reader.pointee.privdata = UnsafeMutableRawPointer(budget)
    let fed = input.withUnsafeBufferPointer { buffer in
        buffer.baseAddress.map { base in base.withMemoryRebound(to: CChar.self, capacity: buffer.count) { redisReaderFeed(reader, $0, buffer.count) } }
    }
    guard fed == nil || fed == REDIS_OK else { return }
    for _ in 0..<maximumReplies {
        var raw: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &raw) == REDIS_OK, let raw else { break }
        defer { freeReplyObject(raw) }
        body(raw.assumingMemoryBound(to: redisReply.self))
    }
}
