/// Whether a node's subscription still delivers, checked end to end, as a pure value: no I/O,
/// no clock of its own.
///
/// PING proves the subscription connection answers, not that it delivers: a subscriber left on
/// a demoted master (Sentinel split-brain), or behind a path that drops pushes, stays
/// "connected" and green while nothing arrives (Centrifugo #1189). So every `interval`, whatever
/// the traffic, the node PUBLISHes an unpredictable token on its own probe channel (through its
/// command path, which is where its publishes go) and expects it back on the subscription:
/// - `PUBLISH` answers 0 receivers: the server the node publishes to has no subscriber for the
///   probe channel, so the subscription sits on another server: silent at once.
/// - The token is not back within `deadline` of the PUBLISH's answer: silent. While other
///   messages or confirmations keep arriving, the token may simply be queued behind them (a
///   backlog of messages, the confirmations of a re-subscription of many channels, a node
///   starved of CPU): the deadline then counts from the last of them, up to `maximumWait` after
///   the answer (60 s, the window of Redis's own pub/sub output-buffer soft limit), so a busy
///   subscription is not torn down for being late (its backlog lost, or a large re-subscription
///   restarted again and again), yet one that delivers everything but the probe is still found.
///   PONGs do not count: a path that drops pushes still answers PING.
/// - The PUBLISH itself fails (or is not answered within `interval + deadline`): the command
///   path is down, which the command client reports; no verdict on the subscription.
///
/// The probe starts once the probe channel is confirmed on a connection (`connected`), so a
/// fresh connection is probed at once. One probe is outstanding at a time; an answer or a token
/// that is not the outstanding one (stale, or published by someone else) is ignored.
struct DeliveryProbeMachine<Generator: RandomNumberGenerator> {
    /// What the host must do.
    enum Action: Hashable {
        /// PUBLISH `token` on the probe channel, then feed `published` or `publishFailed`.
        case publish(token: [UInt8])
        /// The subscription does not deliver: drop it and reconnect.
        case declareSilent(reason: String)
        /// The outstanding token came back: the subscription delivers.
        case healthy
    }

    private struct Probe {
        let token: [UInt8]
        let sentAt: ContinuousClock.Instant
    }

    private enum State {
        /// No live connection with the probe channel confirmed.
        case idle
        /// Connected; the next probe is due at this instant.
        case waiting(next: ContinuousClock.Instant)
        /// PUBLISH sent, not answered yet.
        case publishing(Probe)
        /// PUBLISH answered with receivers; the token is awaited on the subscription, by `due`.
        case awaitingToken(Probe, answeredAt: ContinuousClock.Instant, due: ContinuousClock.Instant)
        /// Declared silent; nothing more until the connection is rebuilt.
        case silent
    }

    /// Bytes of random per token (hex-encoded, so tokens are twice as long).
    static var tokenBytes: Int { 16 }

    let interval: Duration
    let deadline: Duration
    /// The longest wait for a token after the PUBLISH's answer while other traffic arrives.
    let maximumWait: Duration
    private var state = State.idle
    private var generator: Generator

    init(interval: Duration, deadline: Duration, maximumWait: Duration = .seconds(60), generator: Generator) {
        self.interval = max(interval, .milliseconds(1))
        self.deadline = max(deadline, .milliseconds(1))
        self.maximumWait = max(maximumWait, self.deadline)
        self.generator = generator
    }

    /// When `tick` must run next (nil: only an input can change anything).
    var nextDeadline: ContinuousClock.Instant? {
        switch state {
        case .idle, .silent: nil
        case .waiting(let next): next
        case .publishing(let probe): probe.sentAt + interval + deadline
        case .awaitingToken(_, _, let due): due
        }
    }

    /// The probe channel is confirmed on a (new) connection: probe now.
    mutating func connected(now: ContinuousClock.Instant) {
        state = .waiting(next: now)
    }

    /// The connection is gone: no probing until the next `connected`.
    mutating func disconnected() {
        state = .idle
    }

    /// Time passed: start a due probe, or judge an overdue one.
    mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        switch state {
        case .idle, .silent:
            return []
        case .waiting(let next):
            guard now >= next else { return [] }
            let token = makeToken()
            state = .publishing(Probe(token: token, sentAt: now))
            return [.publish(token: token)]
        case .publishing(let probe):
            guard now >= probe.sentAt + interval + deadline else { return [] }
            // The command path never answered: its own timeouts report that. Probe again.
            state = .waiting(next: probe.sentAt + interval)
            return tick(now: now)
        case .awaitingToken(_, let answeredAt, let due):
            guard now >= due else { return [] }
            state = .silent
            let waited = answeredAt.duration(to: now).roundedUpMilliseconds
            return [.declareSilent(reason: "the probe message did not come back within \(deadline.roundedUpMilliseconds) ms of its PUBLISH (waited \(waited) ms)")]
        }
    }

    /// Redis answered the PUBLISH of `token`: `receivers` subscribers got it.
    mutating func published(token: [UInt8], receivers: Int, now: ContinuousClock.Instant) -> [Action] {
        guard case .publishing(let probe) = state, probe.token == token else { return [] }
        guard receivers > 0 else {
            state = .silent
            return [.declareSilent(reason: "the Redis server the node publishes to has no subscriber for its probe channel: the subscription is on another server")]
        }
        state = .awaitingToken(probe, answeredAt: now, due: now + deadline)
        return []
    }

    /// Other messages or confirmations arrived on the subscription: the token may be queued
    /// behind them, so the deadline counts from now (at most `maximumWait` past the answer).
    mutating func traffic(now: ContinuousClock.Instant) {
        guard case .awaitingToken(let probe, let answeredAt, let due) = state else { return }
        let extended = min(now + deadline, answeredAt + maximumWait)
        if extended > due { state = .awaitingToken(probe, answeredAt: answeredAt, due: extended) }
    }

    /// The PUBLISH of `token` failed: the command path is down, not a verdict on the subscription.
    mutating func publishFailed(token: [UInt8]) {
        guard case .publishing(let probe) = state, probe.token == token else { return }
        state = .waiting(next: probe.sentAt + interval)
    }

    /// A message arrived on the probe channel with `payload`.
    mutating func received(payload: [UInt8]) -> [Action] {
        let probe: Probe
        switch state {
        case .publishing(let outstanding), .awaitingToken(let outstanding, _, _): probe = outstanding
        case .idle, .waiting, .silent: return []
        }
        guard payload == probe.token else { return [] }
        // Back, possibly before the PUBLISH's answer (two connections): delivery works either
        // way, and the late answer then finds no outstanding probe and is ignored.
        state = .waiting(next: probe.sentAt + interval)
        return [.healthy]
    }

    private mutating func makeToken() -> [UInt8] {
        let digits = Array("0123456789abcdef".utf8)
        var token: [UInt8] = []
        token.reserveCapacity(2 * Self.tokenBytes)
        for _ in 0..<Self.tokenBytes {
            let byte = UInt8.random(in: .min ... .max, using: &generator)
            token.append(digits[Int(byte >> 4)])
            token.append(digits[Int(byte & 0x0F)])
        }
        return token
    }
}
