import NIOCore

/// When a connection that is not (yet) a stream must have sent its next request, as a pure
/// state machine: it is told what happened and answers with what to do about the timer.
///
/// - From accept, the first request (head and body) must arrive within `--request-timeout`.
/// - Once a request has ended and its answer is being made, only a stall guard runs: an answer
///   that makes no progress for `--idle-timeout` (a client that never reads its responses, so
///   they cannot be written) closes the connection, which would otherwise hold its slot forever.
/// - After a keep-alive response, the connection may stay idle for `--idle-timeout`; the first
///   byte of the next request starts its `--request-timeout`, which later bytes do not extend,
///   so a head or body trickled a byte at a time (slowloris) is cut off all the same.
/// - A request that became a stream leaves the machine: streams never time out.
struct RequestTimeoutStateMachine {
    /// What the timer is waiting for.
    enum Phase: Equatable {
        /// Nothing received yet on a new connection.
        case awaitingFirstRequest(deadline: NIODeadline)
        /// Between keep-alive requests.
        case idle(deadline: NIODeadline)
        /// Part of a request received.
        case receiving(deadline: NIODeadline)
        /// Requests ended and being answered; `bytesSince` when more bytes came meanwhile.
        case answering(inFlight: Int, bytesSince: Bool, deadline: NIODeadline)
        /// A stream, or closing: no timer.
        case finished
    }

    /// What the handler does.
    enum Action: Equatable {
        case none
        /// (Re)arm the one timer for `deadline`.
        case schedule(NIODeadline)
        case cancelTimer
        /// Close without an answer (nothing of a request arrived).
        case close
        /// Answer 408 Request Timeout and close (part of a request arrived).
        case requestTimeout
    }

    let requestTimeout: TimeAmount
    let idleTimeout: TimeAmount
    private(set) var phase: Phase = .finished

    init(requestTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.requestTimeout = requestTimeout
        self.idleTimeout = idleTimeout
    }

    mutating func connected(now: NIODeadline) -> Action {
        let deadline = now + requestTimeout
        phase = .awaitingFirstRequest(deadline: deadline)
        return .schedule(deadline)
    }

    mutating func bytesReceived(now: NIODeadline) -> Action {
        switch phase {
        case .awaitingFirstRequest(let deadline):
            // The first request's time counts from accept.
            phase = .receiving(deadline: deadline)
            return .none
        case .idle:
            let deadline = now + requestTimeout
            phase = .receiving(deadline: deadline)
            return .schedule(deadline)
        case .answering(let inFlight, _, let deadline):
            phase = .answering(inFlight: inFlight, bytesSince: true, deadline: deadline)
            return .none
        case .receiving, .finished:
            return .none
        }
    }

    /// A request ended (or an answer started before it ended): from now on only the stall guard.
    mutating func requestEnded(now: NIODeadline) -> Action {
        let deadline = now + idleTimeout
        switch phase {
        case .awaitingFirstRequest, .idle, .receiving:
            phase = .answering(inFlight: 1, bytesSince: false, deadline: deadline)
            return .schedule(deadline)
        case .answering(let inFlight, _, _):
            phase = .answering(inFlight: inFlight + 1, bytesSince: false, deadline: deadline)
            return .schedule(deadline)
        case .finished:
            return .none
        }
    }

    /// A response ended and the connection stays open for the next request.
    mutating func responseEnded(now: NIODeadline) -> Action {
        guard case .answering(let inFlight, let bytesSince, _) = phase else { return .none }
        if inFlight > 1 {
            let deadline = now + idleTimeout
            phase = .answering(inFlight: inFlight - 1, bytesSince: bytesSince, deadline: deadline)
            return .schedule(deadline)
        }
        if bytesSince {
            // Part of the next request is already here: its time runs from now.
            let deadline = now + requestTimeout
            phase = .receiving(deadline: deadline)
            return .schedule(deadline)
        }
        let deadline = now + idleTimeout
        phase = .idle(deadline: deadline)
        return .schedule(deadline)
    }

    /// The request became a stream, or the connection closes: no more timers.
    mutating func finish() -> Action {
        guard phase != .finished else { return .none }
        phase = .finished
        return .cancelTimer
    }

    /// The timer armed for some deadline fired at `now`.
    mutating func timerFired(now: NIODeadline) -> Action {
        switch phase {
        case .awaitingFirstRequest(let deadline), .idle(let deadline), .answering(_, _, let deadline):
            guard now >= deadline else { return .schedule(deadline) }
            phase = .finished
            return .close
        case .receiving(let deadline):
            guard now >= deadline else { return .schedule(deadline) }
            phase = .finished
            return .requestTimeout
        case .finished:
            return .none
        }
    }
}
