import SSERedis
import SSEWire

/// Publishes with history and replays it, through a `RedisCommandClient`.
public final class HistoryStore: Sendable {
    public let configuration: HistoryConfiguration
    private let client: RedisCommandClient

    public init(configuration: HistoryConfiguration, client: RedisCommandClient) {
        self.configuration = configuration
        self.client = client
    }

    /// Publishes `message` on `channel` with a broker-assigned position as its id, appending it
    /// to the channel's history in the same atomic step. The message's own `id` is replaced.
    public func publish(
        _ message: FlaskSSEMessage,
        channel: String,
        completion: @escaping @Sendable (Result<(position: String, receivers: Int), RedisError>) -> Void
    ) {
        let (head, tail) = message.payloadAroundID
        HistoryScripts.publish.run(
            on: client,
            keys: [configuration.epochKey, configuration.sequenceKey, configuration.lastKey, configuration.streamKey(channel)],
            arguments: [
                Array(channel.utf8), head, tail, Array(String(configuration.length).utf8),
                Array(String(configuration.ttlSeconds).utf8),
            ]
        ) { result in
            completion(
                result.flatMap { reply in
                    guard case .array(let items) = reply, items.count == 2, let position = items[0].string,
                        let receivers = items[1].integer
                    else { return .failure(RedisError(.serverError, "unexpected reply from the publish script: \(reply)")) }
                    return .success((position, Int(receivers)))
                }
            )
        }
    }

    /// Reads every retained event after `position` on `channels`, in one atomic snapshot.
    public func replay(
        channels: [String],
        after position: HistoryPosition,
        completion: @escaping @Sendable (Result<HistoryReplay, RedisError>) -> Void
    ) {
        HistoryScripts.replay.run(
            on: client,
            keys: [configuration.epochKey, configuration.sequenceKey, configuration.lastKey] + channels.map(configuration.streamKey),
            arguments: [Array(String(position.epoch).utf8), Array(String(position.sequence).utf8)] + channels.map { Array($0.utf8) }
        ) { result in
            completion(result.flatMap { Self.decodeReplay($0, channels: channels, after: position) })
        }
    }

    /// Stops the store's Redis connection.
    public func shutdown() {
        client.shutdown()
    }

    /// The position of the newest event published on `channel` with history (nil if none is
    /// recorded).
    public func lastPosition(of channel: String, completion: @escaping @Sendable (Result<HistoryPosition?, RedisError>) -> Void) {
        client.send([Array("HGET".utf8), Array(configuration.lastKey.utf8), Array(channel.utf8)]) { result in
            completion(result.map { $0.string.flatMap(HistoryPosition.init) })
        }
    }

    static func decodeReplay(_ reply: RedisReply, channels: [String], after position: HistoryPosition) -> Result<HistoryReplay, RedisError> {
        guard case .array(let top) = reply, top.count == 3, let epochText = top[0].string, let sequenceText = top[1].string,
            case .array(let perChannel) = top[2], perChannel.count == channels.count
        else { return .failure(RedisError(.serverError, "unexpected reply from the replay script")) }
        let current = UInt64(epochText).flatMap { epoch in UInt64(sequenceText).map { HistoryPosition(epoch: epoch, sequence: $0) } }
        if let current, position.epoch != 0, position.epoch != current.epoch || position > current {
            return .success(HistoryReplay(events: [], gaps: channels.map { ($0, .unknown) }, current: current))
        }
        var events: [(position: HistoryPosition, channel: String, payload: [UInt8])] = []
        var gaps: [(channel: String, gap: HistoryReplay.Gap)] = []
        for (channel, item) in zip(channels, perChannel) {
            guard case .array(let pair) = item, pair.count == 2, case .array(let entries) = pair[1] else {
                return .failure(RedisError(.serverError, "unexpected channel entry from the replay script"))
            }
            if let gapText = pair[0].string, let gap = HistoryReplay.Gap(rawValue: gapText) {
                gaps.append((channel, gap))
            }
            for entry in entries {
                guard case .array(let parts) = entry, parts.count == 2, let id = parts[0].string,
                    let entryPosition = HistoryPosition(id), case .array(let fields) = parts[1],
                    let index = stride(from: 0, to: fields.count - 1, by: 2).first(where: { fields[$0].string == "p" }),
                    case .bulkString(let payload) = fields[index + 1]
                else { continue }
                events.append((entryPosition, channel, payload))
            }
        }
        events.sort { $0.position < $1.position }
        return .success(HistoryReplay(events: events, gaps: gaps, current: current))
    }
}
