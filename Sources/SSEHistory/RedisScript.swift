import SSERedis
import Synchronization

/// A Lua script run with EVALSHA, loaded once with SCRIPT LOAD and again after NOSCRIPT
/// (a restarted or flushed Redis forgets scripts).
final class RedisScript: Sendable {
    let source: String
    private let sha = Mutex<[UInt8]?>(nil)

    init(_ source: String) {
        self.source = source
    }

    /// Runs the script; the completion gets Redis's reply (error replies as failures).
    func run(
        on client: RedisCommandClient,
        keys: [String],
        arguments: [[UInt8]],
        lane: Int = 0,
        completion: @escaping @Sendable (Result<RedisReply, RedisError>) -> Void
    ) {
        run(on: client, keys: keys, arguments: arguments, lane: lane, reloadsLeft: 1, completion: completion)
    }

    private func run(
        on client: RedisCommandClient,
        keys: [String],
        arguments: [[UInt8]],
        lane: Int,
        reloadsLeft: Int,
        completion: @escaping @Sendable (Result<RedisReply, RedisError>) -> Void
    ) {
        guard let digest = sha.withLock({ $0 }) else {
            client.send([Array("SCRIPT".utf8), Array("LOAD".utf8), Array(source.utf8)], lane: lane) { result in
                switch result {
                case .success(.bulkString(let digest)):
                    self.sha.withLock { $0 = digest }
                    self.run(on: client, keys: keys, arguments: arguments, lane: lane, reloadsLeft: reloadsLeft, completion: completion)
                case .success(let other):
                    completion(.failure(RedisError(.serverError, "SCRIPT LOAD answered \(other)")))
                case .failure(let error):
                    completion(.failure(error))
                }
            }
            return
        }
        let command = [Array("EVALSHA".utf8), digest, Array(String(keys.count).utf8)] + keys.map { Array($0.utf8) } + arguments
        client.send(command, lane: lane) { result in
            switch result {
            case .success(.error(let message)) where message.hasPrefix("NOSCRIPT") && reloadsLeft > 0:
                self.sha.withLock { $0 = nil }
                self.run(on: client, keys: keys, arguments: arguments, lane: lane, reloadsLeft: reloadsLeft - 1, completion: completion)
            case .success(.error(let message)):
                completion(.failure(RedisError(serverReply: message)))
            default:
                completion(result)
            }
        }
    }
}
