import SSERedis
import SSEWire
import Synchronization

/// Publishes with history and reads it back, through a `RedisCommandClient` (or, with
/// positions per channel on a Redis Cluster, a router to the master serving each channel).
public final class HistoryStore: Sendable {
    public let configuration: HistoryConfiguration
    /// The highest position this process has seen Redis vouch for; see `HistoryWatermark`.
    public let watermark: HistoryWatermark
    /// Most events in one publish-script call.
    public let maximumBatchEvents: Int
    /// Most payload bytes in one publish-script call (a single larger event goes alone).
    public let maximumBatchBytes: Int
    private let client: any RedisCommandSending
    private let queues: Mutex<PublishBatchQueues<PublishBatch>>

    /// One caller's publish waiting for, or in, a script call.
    private struct PublishBatch: Sendable {
        let parts: [([UInt8], [UInt8])]
        let completion: BatchCompletion
    }

    /// - Parameters:
    ///   - maximumBatchEvents: most events per publish-script call (256: about 1 ms of Redis time).
    ///   - maximumBatchBytes: most payload bytes per publish-script call.
    ///   - maximumWaitingEvents: most events that may wait on one channel behind its call in
    ///     flight; beyond that a publish fails at once with `.overloaded`.
    public init(
        configuration: HistoryConfiguration,
        client: any RedisCommandSending,
        watermark: HistoryWatermark = HistoryWatermark(),
        maximumBatchEvents: Int = 256,
        maximumBatchBytes: Int = 1 << 20,
        maximumWaitingEvents: Int = 65_536
    ) {
        self.configuration = configuration
        self.client = client
        self.watermark = watermark
        self.maximumBatchEvents = max(1, maximumBatchEvents)
        self.maximumBatchBytes = max(1, maximumBatchBytes)
        self.queues = Mutex(
            PublishBatchQueues(maximumEvents: self.maximumBatchEvents, maximumBytes: self.maximumBatchBytes, maximumWaitingEvents: maximumWaitingEvents)
        )
    }

    /// The keys of the counter that numbers `channel` (the shared one unless `.perChannel`).
    private func counterKeys(_ channel: String) -> [String] {
        [configuration.epochKey(channel), configuration.sequenceKey(channel), configuration.previousKey(channel)]
    }

    /// The highest position this process saw on the counter that numbers `channel`.
    public func seen(on channel: String) -> HistoryPosition? {
        configuration.isPerChannel ? watermark.position(of: ChannelName(channel)) : watermark.position
    }

    private func observe(_ position: HistoryPosition, on channel: String) {
        if configuration.isPerChannel {
            watermark.observe(position, on: ChannelName(channel))
        } else {
            watermark.observe(position)
        }
    }

    /// One published event: its position (the event's id) and the Redis subscribers it reached.
    public typealias Published = (position: String, receivers: Int)
    public typealias BatchCompletion = @Sendable (Result<[Published], RedisError>) -> Void

    /// Publishes `message` on `channel` with a broker-assigned position as its id, appending it
    /// to the channel's history in the same atomic step. The message's own `id` is replaced.
    public func publish(
        _ message: FlaskSSEMessage,
        channel: String,
        completion: @escaping @Sendable (Result<Published, RedisError>) -> Void
    ) {
        publish([message], channel: channel) { result in
            completion(
                result.flatMap { published in
                    guard let first = published.first else { return .failure(RedisError(.serverError, "the publish script returned no position")) }
                    return .success(first)
                }
            )
        }
    }

    /// Publishes `messages` on `channel`, in order, each with a broker-assigned position as its
    /// id (consecutive positions for a batch that fits one script call). `completion` gets one
    /// entry per message, in order, or the error.
    ///
    /// Group commit: while a script call for the channel is in flight, what is published on it
    /// waits and goes out with the next call (at most `maximumBatchEvents` events and
    /// `maximumBatchBytes` payload bytes per call; a larger batch is cut into several calls, each
    /// atomic). A batch cut into calls that fails part way reports the failure, and the calls
    /// before it were published.
    public func publish(_ messages: [FlaskSSEMessage], channel: String, completion: @escaping BatchCompletion) {
        guard !messages.isEmpty else {
            completion(.success([]))
            return
        }
        var parts: [([UInt8], [UInt8])] = []
        parts.reserveCapacity(messages.count)
        var bytes = 0
        for message in messages {
            let part = message.payloadAroundID
            bytes += part.head.count + part.tail.count
            parts.append((part.head, part.tail))
        }
        let request = PublishBatch(parts: parts, completion: completion)
        let action = queues.withLock { $0.submit(request, events: parts.count, bytes: bytes, channel: channel) }
        switch action {
        case .send(let batch):
            send(batch.map(\.request), channel: channel)
        case .queued:
            break
        case .refused:
            completion(.failure(RedisError(.overloaded, "too many history publishes waiting on one channel")))
        }
    }

    /// Runs the publish script for `batch` (cut at the bounds, one call after another), tells each
    /// request its outcome, then sends what waited meanwhile.
    private func send(_ batch: [PublishBatch], channel: String) {
        let events = batch.flatMap(\.parts)
        var calls: [ArraySlice<([UInt8], [UInt8])>] = []
        var start = 0
        var bytes = 0
        for (index, part) in events.enumerated() {
            let size = part.0.count + part.1.count
            if index > start, index - start >= maximumBatchEvents || bytes + size > maximumBatchBytes {
                calls.append(events[start..<index])
                start = index
                bytes = 0
            }
            bytes += size
        }
        calls.append(events[start..<events.count])
        run(calls, index: 0, published: [], channel: channel) { [self] published, error in
            var offset = 0
            for request in batch {
                let end = offset + request.parts.count
                if end <= published.count {
                    request.completion(.success(Array(published[offset..<end])))
                } else {
                    request.completion(.failure(error ?? RedisError(.serverError, "the publish script returned too few positions")))
                }
                offset = end
            }
            if let next = queues.withLock({ $0.completed(channel: channel) }) {
                send(next.map(\.request), channel: channel)
            }
        }
    }

    private func run(
        _ calls: [ArraySlice<([UInt8], [UInt8])>],
        index: Int,
        published: [Published],
        channel: String,
        done: @escaping @Sendable ([Published], RedisError?) -> Void
    ) {
        guard index < calls.count else {
            done(published, nil)
            return
        }
        let call = calls[index]
        let seen = seen(on: channel)
        var arguments: [[UInt8]] = [
            Array(channel.utf8), Self.digits(configuration.length), Self.digits(configuration.ttlSeconds),
            Self.digits(configuration.ttlSeconds + HistoryConfiguration.lastPositionGraceSeconds),
            seen.map { Self.digits($0.epoch) } ?? [], seen.map { Self.digits($0.sequence) } ?? [],
        ]
        arguments.reserveCapacity(arguments.count + 2 * call.count)
        for (head, tail) in call {
            arguments.append(head)
            arguments.append(tail)
        }
        let script = !configuration.isPerChannel ? HistoryScripts.publish
            : configuration.publishesSharded ? HistoryScripts.shardedPublish : HistoryScripts.perChannelPublish
        script.run(
            on: client,
            keys: counterKeys(channel) + [configuration.lastKey(channel), configuration.streamKey(channel)],
            arguments: arguments
        ) { [self] result in
            switch Self.decodePublished(result, count: call.count) {
            case .success(let positions):
                if let last = positions.last.flatMap({ HistoryPosition($0.position) }) { observe(last, on: channel) }
                run(calls, index: index + 1, published: published + positions, channel: channel, done: done)
            case .failure(let error):
                done(published, error)
            }
        }
    }

    static func decodePublished(_ result: Result<RedisReply, RedisError>, count: Int) -> Result<[Published], RedisError> {
        result.flatMap { reply in
            guard case .array(let items) = reply, items.count == 2 * count else {
                return .failure(RedisError(.serverError, "unexpected reply from the publish script"))
            }
            var published: [Published] = []
            published.reserveCapacity(count)
            for index in stride(from: 0, to: items.count, by: 2) {
                guard let position = items[index].string, let receivers = items[index + 1].integer.flatMap({ Int(exactly: $0) }) else {
                    return .failure(RedisError(.serverError, "unexpected entry in the publish script's reply"))
                }
                published.append((position, receivers))
            }
            return .success(published)
        }
    }

    /// The state of the counter that numbers `channel` (the shared one, whatever `channel`, unless
    /// `.perChannel`): current position and previous epoch.
    public func state(channel: String = "", lane: Int = 0, completion: @escaping @Sendable (Result<HistoryState, RedisError>) -> Void) {
        HistoryScripts.state.run(on: client, keys: counterKeys(channel), arguments: [], lane: lane) { result in
            completion(result.flatMap(Self.decodeState))
        }
    }

    /// Starts a new epoch if Redis's counter (the one that numbers `channel`) is below this
    /// process's watermark in the same epoch (Redis lost events); returns whether a new epoch began.
    public func startEpochIfBehind(channel: String = "", completion: @escaping @Sendable (Result<Bool, RedisError>) -> Void) {
        guard let seen = seen(on: channel) else {
            completion(.success(false))
            return
        }
        HistoryScripts.startEpochIfBehind.run(
            on: client,
            keys: counterKeys(channel),
            arguments: [Self.digits(seen.epoch), Self.digits(seen.sequence)]
        ) { [self] result in
            completion(
                result.flatMap { reply in
                    guard case .array(let items) = reply, items.count == 3, let started = items[2].integer else {
                        return .failure(RedisError(.serverError, "unexpected reply from the epoch script"))
                    }
                    if started == 1, let epoch = items[0].string.flatMap({ UInt64($0) }) {
                        observe(HistoryPosition(epoch: epoch, sequence: 0), on: channel)
                    }
                    return .success(started == 1)
                }
            )
        }
    }

    /// Reads one bounded page of the events after `cursor` on `channels` (`.perChannel`: one
    /// channel per call, since several channels' keys would cross slots).
    ///
    /// `share` (at least 1): how many channels the page's budget is split over; a replay that
    /// reads its channels one call each passes their count, so one round of its calls stays
    /// within one page's events and bytes.
    public func page(
        channels: [String],
        after cursor: HistoryPosition,
        share: Int = 1,
        lane: Int = 0,
        completion: @escaping @Sendable (Result<HistoryPage, RedisError>) -> Void
    ) {
        if configuration.isPerChannel, channels.count > 1 {
            completion(.failure(RedisError(.serverError, "a page of positions per channel reads one channel")))
            return
        }
        let split = max(1, channels.count) * max(1, share)
        let perChannelBytes = max(1, configuration.pageBytes / split)
        let perChannelEvents = max(1, configuration.pageEvents / max(1, share))
        HistoryScripts.replayPage.run(
            on: client,
            keys: channels.flatMap { [configuration.streamKey($0), configuration.lastKey($0)] },
            arguments: [
                Self.digits(cursor.epoch), Self.digits(cursor.sequence), Self.digits(perChannelEvents),
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
        let key = Array(configuration.lastKey(channel).utf8)
        client.send([Array("GET".utf8), key], key: key, lane: lane) { result in
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
