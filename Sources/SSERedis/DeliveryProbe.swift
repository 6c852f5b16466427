import Logging
import SSEPOSIX
import SSEWire
import Synchronization

/// What the delivery probe shares between the subscriber thread and the rest: its channel, its
/// command path, the PUBLISH answers on their way back, and the verdict for `/readyz`.
///
/// The probe PUBLISHes through a small `RedisCommandClient` of its own, made from the same
/// `RedisConfiguration` as every other client of the node (so it reaches the server the node's
/// publishes reach, by the same endpoint resolution), rather than through a lane of another
/// client: it works for every host of a `RedisSubscriber` (the node, a mounted broker, with or
/// without history), and a flood of publishes or replays can never delay it into a false
/// "silent". It costs one idle connection and one PUBLISH per interval.
final class DeliveryProbe: Sendable {
    /// One PUBLISH's outcome, from the command thread.
    struct Answer: Sendable {
        let token: [UInt8]
        /// The receiver count, or why there is none.
        let result: Result<Int, RedisError>
    }

    let channel: ChannelName
    private let client: RedisCommandClient
    private let wakeup: WakeupPipe
    private let answers = Mutex<[Answer]>([])
    private let delivering = Atomic<Bool>(true)

    /// Answers kept until the thread takes them; only one probe is outstanding at a time.
    private static var maximumAnswers: Int { 4 }

    init(redis: RedisConfiguration, nodeName: String?, logger: Logger, wakeup: WakeupPipe) {
        self.channel = ChannelName(Self.channelName(node: nodeName))
        self.client = RedisCommandClient(redis: redis, logger: logger, maximumPending: Self.maximumAnswers, retryIntervalMilliseconds: 500)
        self.wakeup = wakeup
    }

    /// `sse-broker:probe:<node>:<16 random hex>`: unique per process even when node names repeat.
    static func channelName(node: String?) -> String {
        let usable = node.flatMap { name -> String? in
            guard !name.isEmpty, name.utf8.count <= 64, name.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else { return nil }
            return name
        }
        return RedisSubscriber.probeChannelPrefix + (usable ?? randomHex(bytes: 4)) + ":" + randomHex(bytes: 8)
    }

    private static func randomHex(bytes: Int) -> String {
        var random = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        var text = ""
        for _ in 0..<bytes {
            let byte = Int(UInt8.random(in: .min ... .max, using: &random))
            text.append(digits[byte >> 4])
            text.append(digits[byte & 0x0F])
        }
        return text
    }

    var isDelivering: Bool { delivering.load(ordering: .relaxed) }

    func setDelivering(_ value: Bool) { delivering.store(value, ordering: .relaxed) }

    /// PUBLISHes `token`; the answer is queued for `takeAnswers` and wakes the subscriber thread.
    func publish(_ token: [UInt8]) {
        client.send([Array("PUBLISH".utf8), channel.bytes, token]) { [self] result in
            let outcome: Result<Int, RedisError> = switch result {
            case .success(let reply):
                if let receivers = reply.int { .success(receivers) } else { .failure(Self.unexpected(reply)) }
            case .failure(let error): .failure(error)
            }
            self.answers.withLock { queued in
                if queued.count >= Self.maximumAnswers { queued.removeFirst() }
                queued.append(Answer(token: token, result: outcome))
            }
            self.wakeup.signal()
        }
    }

    /// The answers that arrived since the last call.
    func takeAnswers() -> [Answer] {
        answers.withLock { queued in
            defer { queued.removeAll() }
            return queued
        }
    }

    func shutdown() {
        client.shutdown()
    }

    private static func unexpected(_ reply: RedisReply) -> RedisError {
        if case .error(let text) = reply { return RedisError(serverReply: String(text.prefix(200))) }
        return RedisError(.protocolViolation, "PUBLISH answered with something other than an integer")
    }
}
