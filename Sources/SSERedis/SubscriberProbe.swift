import SSEWire

/// The delivery probe as the subscriber thread hosts it: feeds a `DeliveryProbeMachine` the
/// probe channel's confirmations and messages, the PUBLISH answers and the time, and carries
/// out its actions. Used by the subscriber thread alone.
struct SubscriberProbe {
    private let owner: RedisSubscriber
    private let shared: DeliveryProbe
    /// Redis refuses the probe channel (logged once until it is confirmed).
    private var channelRefused = false
    private let channelText: String
    private var machine: DeliveryProbeMachine<SystemRandomNumberGenerator>
    /// The last PUBLISH failed (logged once until one succeeds again).
    private var publishFailing = false

    /// The longest interval or deadline taken from the configuration: a day.
    private static var maximumMilliseconds: Int { 86_400_000 }

    init(owner: RedisSubscriber, shared: DeliveryProbe) {
        self.owner = owner
        self.shared = shared
        self.channelText = shared.channel.text
        let tuning = owner.tuning
        self.machine = DeliveryProbeMachine(
            interval: .milliseconds(min(max(1, tuning.probeIntervalMilliseconds), Self.maximumMilliseconds)),
            deadline: .milliseconds(min(max(1, tuning.probeDeadlineMilliseconds), Self.maximumMilliseconds)),
            generator: SystemRandomNumberGenerator()
        )
    }

    /// The probe channel.
    var channel: ChannelName { shared.channel }

    /// When the probe must be serviced next.
    var nextDeadline: ContinuousClock.Instant? { machine.nextDeadline }

    /// Whether `message` is on the probe channel (compared byte for byte, as Redis names
    /// channels); such messages go to `received`, never to the delegate.
    func owns(_ message: RedisPubSubMessage) -> Bool {
        message.channel.utf8.count == channelText.utf8.count && message.channel.utf8.elementsEqual(channelText.utf8)
    }

    /// Redis confirmed `channel` on the current connection: for the probe channel, probe now.
    mutating func confirmed(_ channel: ChannelName, now: ContinuousClock.Instant) {
        guard channel == shared.channel else { return }
        channelRefused = false
        machine.connected(now: now)
    }

    /// `refused` without the probe channel: Redis refusing it (an ACL without
    /// `&sse-broker:probe:*`) turns the probe off, which is logged here, but it is no channel
    /// of the delegate's.
    mutating func screen(_ refused: [ChannelName], error: String) -> [ChannelName] {
        guard refused.contains(shared.channel) else { return refused }
        if !channelRefused {
            channelRefused = true
            owner.log.warning(
                "Redis refuses the delivery probe's channel; no probe until it accepts (grant &\(RedisSubscriber.probeChannelPrefix)* to the ACL user)",
                metadata: ["channel": "\(channelText)", "error": "\(error)"]
            )
        }
        return refused.filter { $0 != shared.channel }
    }

    mutating func disconnected() {
        machine.disconnected()
    }

    /// Other messages or confirmations arrived: the token may be queued behind them.
    mutating func traffic(now: ContinuousClock.Instant) {
        machine.traffic(now: now)
    }

    /// A message on the probe channel.
    mutating func received(_ payload: [UInt8]) {
        // Payloads longer than a token are someone else's; no need to compare them.
        guard payload.count == 2 * DeliveryProbeMachine<SystemRandomNumberGenerator>.tokenBytes else { return }
        _ = perform(machine.received(payload: payload))
    }

    /// Takes the PUBLISH answers, lets time pass; throws when the subscription is silent.
    mutating func service(now: ContinuousClock.Instant) throws(RedisError) {
        var actions: [DeliveryProbeMachine<SystemRandomNumberGenerator>.Action] = []
        for answer in shared.takeAnswers() {
            switch answer.result {
            case .success(let receivers):
                publishFailing = false
                actions += machine.published(token: answer.token, receivers: receivers, now: now)
            case .failure(let error):
                if !publishFailing {
                    publishFailing = true
                    owner.log.warning(
                        "Redis delivery probe cannot PUBLISH (command path); no verdict on the subscription",
                        metadata: ["error": "\(error)"]
                    )
                }
                machine.publishFailed(token: answer.token)
            }
        }
        actions += machine.tick(now: now)
        if let reason = perform(actions) {
            owner.log.warning(
                "Redis subscription not delivering; reconnecting",
                metadata: ["reason": "\(reason)", "channel": "\(channelText)"]
            )
            owner.delegate?.subscriber(owner, foundSilent: reason)
            throw RedisError(.timedOut, "delivery probe: \(reason)")
        }
    }

    /// Carries out `actions`; returns the reason of a silent verdict among them.
    private mutating func perform(_ actions: [DeliveryProbeMachine<SystemRandomNumberGenerator>.Action]) -> String? {
        var silent: String?
        for action in actions {
            switch action {
            case .publish(let token):
                shared.publish(token)
            case .healthy:
                if !shared.isDelivering {
                    owner.log.info("Redis subscription delivers again (delivery probe)")
                    shared.setDelivering(true)
                }
            case .declareSilent(let reason):
                shared.setDelivering(false)
                silent = reason
            }
        }
        return silent
    }
}
