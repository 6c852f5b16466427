/// Something that sends Redis commands: one client, or a router over a cluster's masters.
///
/// Callers that need not know whether Redis is one server or a cluster (history's per-channel
/// keys, scripts on a channel's slot) send through this; `key` is what a cluster router needs
/// to pick the master serving the command's slot, and what a single client ignores.
public protocol RedisCommandSending: Sendable {
    /// Sends `arguments` on `lane`; `key` (the command's first key, when it has one) picks the cluster slot.
    func send(_ arguments: [[UInt8]], key: [UInt8]?, lane: Int, completion: @escaping RedisCommandClient.Completion)
    /// Fails everything queued with `.shutdown` and stops every connection thread.
    func shutdown()
}

extension RedisCommandSending {
    /// Sends one command and waits for its reply without blocking the caller's thread.
    public func send(_ arguments: [[UInt8]], key: [UInt8]?, lane: Int = 0) async throws(RedisError) -> RedisReply {
        let result: Result<RedisReply, RedisError> = await withCheckedContinuation { continuation in
            send(arguments, key: key, lane: lane) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }
}

/// One client serves every key: it talks to one endpoint (on a cluster, the master of its slot).
extension RedisCommandClient: RedisCommandSending {
    /// Sends `arguments` on `lane`; `key` is ignored (the client's endpoint decides where it goes).
    public func send(_ arguments: [[UInt8]], key: [UInt8]?, lane: Int, completion: @escaping Completion) {
        send(arguments, lane: lane, completion: completion)
    }
}
