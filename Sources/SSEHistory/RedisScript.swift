import Dispatch
import SSERedis
import Synchronization

/// A Lua script run with EVALSHA, loaded once with SCRIPT LOAD; after NOSCRIPT (a restarted or
/// flushed Redis forgets scripts, and each master of a cluster has its own cache) that one call
/// is sent again as EVAL with the source, which also caches it there.
///
/// An error reply that says Redis did not run the command and may soon (`-LOADING` while a
/// restarted Redis reads its data, `-BUSY`, `-TRYAGAIN`, `-MASTERDOWN`, `-CLUSTERDOWN`, and
/// mid-failover `-READONLY` or `-NOREPLICAS`, after which the command client reconnects to the
/// master) is retried
/// for about three seconds, without blocking anyone (the retry is scheduled, not slept): a
/// publish during the second a restart takes to load then succeeds instead of failing. Such a
/// reply means the script did not run, so a retry never publishes twice. A lost connection is not
/// retried here: the script may have run.
final class RedisScript: Sendable {
    let source: String
    private let sha = Mutex<[UInt8]?>(nil)

    init(_ source: String) {
        self.source = source
    }

    /// Runs the script; the completion gets Redis's reply (error replies as failures).
    func run(
        on client: any RedisCommandSending,
        keys: [String],
        arguments: [[UInt8]],
        lane: Int = 0,
        completion: @escaping @Sendable (Result<RedisReply, RedisError>) -> Void
    ) {
        run(on: client, keys: keys, arguments: arguments, lane: lane, reloadsLeft: 1, attempt: 0, completion: completion)
    }

    /// Delays before the retries of a transient error reply, in milliseconds (about 3 s in all).
    private static let retryDelays = [50, 100, 200, 400, 800, 1600]

    private func run(
        on client: any RedisCommandSending,
        keys: [String],
        arguments: [[UInt8]],
        lane: Int,
        reloadsLeft: Int,
        attempt: Int,
        completion: @escaping @Sendable (Result<RedisReply, RedisError>) -> Void
    ) {
        let again: @Sendable (_ reloadsLeft: Int) -> Void = { reloadsLeft in
            self.run(on: client, keys: keys, arguments: arguments, lane: lane, reloadsLeft: reloadsLeft, attempt: attempt, completion: completion)
        }
        let later: @Sendable (RedisError) -> Void = { error in
            guard error.isTransient, attempt < Self.retryDelays.count else {
                completion(.failure(error))
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Self.retryDelays[attempt])) {
                self.run(on: client, keys: keys, arguments: arguments, lane: lane, reloadsLeft: reloadsLeft, attempt: attempt + 1, completion: completion)
            }
        }
        // Routed by the first key: on a cluster the script loads and runs on the master of its
        // keys' slot (each master loads it once; `NOSCRIPT` from another loads it there).
        let routing = keys.first.map { Array($0.utf8) }
        guard let digest = sha.withLock({ $0 }) else {
            client.send([Array("SCRIPT".utf8), Array("LOAD".utf8), Array(source.utf8)], key: routing, lane: lane) { result in
                switch result {
                case .success(.bulkString(let digest)):
                    self.sha.withLock { $0 = digest }
                    again(reloadsLeft)
                case .success(.error(let message)):
                    later(RedisError(serverReply: message))
                case .success(let other):
                    completion(.failure(RedisError(.serverError, "SCRIPT LOAD answered \(other)")))
                case .failure(let error):
                    completion(.failure(error))
                }
            }
            return
        }
        let tail = [Array(String(keys.count).utf8)] + keys.map { Array($0.utf8) } + arguments
        client.send([Array("EVALSHA".utf8), digest] + tail, key: routing, lane: lane) { result in
            switch result {
            case .success(.error(let message)) where message.hasPrefix("NOSCRIPT") && reloadsLeft > 0:
                // The server that ran it does not know the script (restarted, flushed, or another
                // master of a cluster than the one it was loaded on: SCRIPT LOAD has no key, so it
                // is not redirected as the command is). EVAL sends the source along, is routed and
                // redirected like EVALSHA, and leaves the script cached on that server.
                client.send([Array("EVAL".utf8), Array(self.source.utf8)] + tail, key: routing, lane: lane) { result in
                    switch result {
                    case .success(.error(let message)):
                        later(RedisError(serverReply: message))
                    default:
                        completion(result)
                    }
                }
            case .success(.error(let message)):
                later(RedisError(serverReply: message))
            default:
                completion(result)
            }
        }
    }
}
