import SSERedis
import SSEWire

/// Publishes with history and reads it back, through a `RedisCommandClient`.
public final class HistoryStore: Sendable {
    public let configuration: HistoryConfiguration
    /// The highest position this process has seen Redis vouch for; see `HistoryWatermark`.
    public let watermark: HistoryWatermark
    private let client: RedisCommandClient

    public init(configuration: HistoryConfiguration, client: RedisCommandClient, watermark: HistoryWatermark = HistoryWatermark()) {
        self.configuration = configuration
        self.client = client
        self.watermark = watermark
    }

    private var counterKeys: [String] { [configuration.epochKey, configuration.sequenceKey, configuration.previousKey] }

    /// Publishes `message` on `channel` with a broker-assigned position as its id, appending it
    /// to the channel's history in the same atomic step. The message's own `id` is replaced.
    public func publish(
        _ message: FlaskSSEMessage,
        channel: String,
        completion: @escaping @Sendable (Result<(position: String, receivers: Int), RedisError>) -> Void
    ) {
        let (head, tail) = message.payloadAroundID
        let seen = watermark.position
        let watermark = self.watermark
        HistoryScripts.publish.run(
            on: client,
            keys: counterKeys + [configuration.lastKey(channel), configuration.streamKey(channel)],
            arguments: [
                Array(channel.utf8), head, tail, Self.digits(configuration.length), Self.digits(configuration.ttlSeconds),
                Self.digits(configuration.ttlSeconds + HistoryConfiguration.lastPositionGraceSeconds),
                seen.map { Self.digits($0.epoch) } ?? [], seen.map { Self.digits($0.sequence) } ?? [],
            ]
        ) { result in
            completion(
                result.flatMap { reply in
                    guard case .array(let items) = reply, items.count == 2, let position = items[0].string,
                        let receivers = items[1].integer.flatMap({ Int(exactly: $0) })
                    else { return .failure(RedisError(.serverError, "unexpected reply from the publish script")) }
                    if let issued = HistoryPosition(position) { watermark.observe(issued) }
                    return .success((position, receivers))
                }
            )
        }
    }

    /// The counter's state: current position and previous epoch.
    public func state(lane: Int = 0, completion: @escaping @Sendable (Result<HistoryState, RedisError>) -> Void) {
        HistoryScripts.state.run(on: client, keys: counterKeys, arguments: [], lane: lane) { result in
            completion(result.flatMap(Self.decodeState))
        }
    }

    /// Starts a new epoch if Redis's counter is below this process's watermark in the same epoch
    /// (Redis lost events); returns the state after the check, and whether a new epoch began.
    public func startEpochIfBehind(completion: @escaping @Sendable (Result<Bool, RedisError>) -> Void) {
        guard let seen = watermark.position else {
            completion(.success(false))
            return
        }
        HistoryScripts.startEpochIfBehind.run(
            on: client,
            keys: counterKeys,
            arguments: [Self.digits(seen.epoch), Self.digits(seen.sequence)]
        ) { [watermark] result in
            completion(
                result.flatMap { reply in
                    guard case .array(let items) = reply, items.count == 3, let started = items[2].integer else {
                        return .failure(RedisError(.serverError, "unexpected reply from the epoch script"))
                    }
                    if started == 1, let epoch = items[0].string.flatMap({ UInt64($0) }) {
                        watermark.observe(HistoryPosition(epoch: epoch, sequence: 0))
                    }
                    return .success(started == 1)
                }
            )
        }
    }

    /// Reads one bounded page of the events after `cursor` on `channels`.
    public func page(
        channels: [String],
        after cursor: HistoryPosition,
        lane: Int = 0,
        completion: @escaping @Sendable (Result<HistoryPage, RedisError>) -> Void
    ) {
        let perChannelBytes = max(1, configuration.pageBytes / max(1, channels.count))
        HistoryScripts.replayPage.run(
            on: client,
            keys: channels.flatMap { [configuration.streamKey($0), configuration.lastKey($0)] },
            arguments: [
                Self.digits(cursor.epoch), Self.digits(cursor.sequence), Self.digits(configuration.pageEvents),
                Self.digits(perChannelBytes),
            ],
            lane: lane
        ) { result in
            completion(result.flatMap { Self.decodePage($0, channels: channels) })
        }
    }

    /// Stops the store's Redis connection.
    public func shutdown() {
        client.shutdown()
    }

    /// The position of the newest event published on `channel` with history (nil if none is
    /// recorded, or its record expired).
    public func lastPosition(of channel: String, lane: Int = 0, completion: @escaping @Sendable (Result<HistoryPosition?, RedisError>) -> Void) {
        client.send([Array("GET".utf8), Array(configuration.lastKey(channel).utf8)], lane: lane) { result in
            completion(
                result.flatMap { reply in
                    switch reply {
                    case .null: return .success(nil)
                    case .bulkString: return .success(reply.string.flatMap(HistoryPosition.init))
                    case .error(let message): return .failure(RedisError(serverReply: message))
                    default: return .failure(RedisError(.serverError, "unexpected reply to GET"))
                    }
                }
            )
        }
    }

    static func digits(_ value: some BinaryInteger) -> [UInt8] {
        Array(String(value).utf8)
    }

    static func decodeState(_ reply: RedisReply) -> Result<HistoryState, RedisError> {
        guard case .array(let items) = reply, items.count == 4, let epochText = items[0].string,
            let sequenceText = items[1].string, let previousEpochText = items[2].string, let previousHighText = items[3].string
        else { return .failure(RedisError(.serverError, "unexpected reply from the state script")) }
        let current = UInt64(epochText).flatMap { epoch in UInt64(sequenceText).map { HistoryPosition(epoch: epoch, sequence: $0) } }
        let previous = UInt64(previousEpochText).map { epoch in
            HistoryState.PreviousEpoch(epoch: epoch, high: UInt64(previousHighText) ?? UInt64.max)
        }
        return .success(HistoryState(current: current, previous: previous))
    }

    static func decodePage(_ reply: RedisReply, channels: [String]) -> Result<HistoryPage, RedisError> {
        guard case .array(let perChannel) = reply, perChannel.count == channels.count else {
            return .failure(RedisError(.serverError, "unexpected reply from the replay script"))
        }
        var reads: [HistoryPage.ChannelRead] = []
        reads.reserveCapacity(channels.count)
        for (channel, item) in zip(channels, perChannel) {
            guard case .array(let triple) = item, triple.count == 3, case .array(let entries) = triple[1],
                let more = triple[2].integer
            else { return .failure(RedisError(.serverError, "unexpected channel entry from the replay script")) }
            var decoded: [(position: HistoryPosition, payload: [UInt8])] = []
            decoded.reserveCapacity(entries.count)
            var last: HistoryPosition?
            for entry in entries {
                guard case .array(let parts) = entry, parts.count == 2, let id = parts[0].string,
                    let position = HistoryPosition(id), case .array(let fields) = parts[1]
                else { continue }
                // The cursor must move even past an entry that is not ours.
                last = position
                guard let index = stride(from: 0, to: fields.count - 1, by: 2).first(where: { fields[$0].string == "p" }),
                    case .bulkString(let payload) = fields[index + 1]
                else { continue }
                decoded.append((position, payload))
            }
            reads.append(
                HistoryPage.ChannelRead(
                    channel: channel,
                    gap: triple[0].string.flatMap(HistoryGap.init(rawValue:)),
                    entries: decoded,
                    last: last,
                    more: more == 1
                )
            )
        }
        return .success(HistoryPage.merge(channels: reads))
    }
}
