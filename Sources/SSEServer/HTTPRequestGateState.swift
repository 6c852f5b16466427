import NIOCore
import NIOHTTP1

/// When the next HTTP/1 request may reach the request handler, as a pure state machine.
///
/// In the place of SwiftNIO's one-request-at-a-time pipelining handler: a request's head passes
/// only when the request handler has asked for one (it starts with one ask), so the handler
/// decides how many requests it works on at once (several publishes, answered in order; every
/// other request alone). A request's body and end always follow its head. A parser error
/// passes once every earlier request was answered, so its `400` comes after their answers.
/// Everything that may not pass yet is held, in order, and reads stop meanwhile: what is held is
/// at most what one read decoded.
struct HTTPRequestGateState {
    /// What came from the decoder.
    enum Event {
        case part(HTTPServerRequestPart)
        case parserError(HTTPParserError)
    }

    /// Heads the handler asked for and has not had yet.
    private(set) var asked = 1
    /// A head passed whose end has not.
    private(set) var inRequest = false
    /// Heads passed whose response has not ended.
    private(set) var unanswered = 0
    /// Events that may not pass yet, oldest first.
    private var held = CircularBuffer<Event>()
    /// A read was asked for while held back.
    private(set) var readPending = false

    var heldCount: Int { held.count }

    /// An event from the decoder: passed on now (returned) or held (`nil`).
    mutating func received(_ event: Event) -> Event? {
        guard held.isEmpty, mayPass(event) else {
            held.append(event)
            return nil
        }
        passed(event)
        return event
    }

    /// The handler asked for one more request.
    mutating func nextRequestAsked() {
        asked += 1
    }

    /// A response (not an informational one) ended.
    mutating func responseEnded() {
        unanswered = max(unanswered - 1, 0)
    }

    /// The oldest held event if it may pass now (call until `nil`, passing each on).
    mutating func nextReleased() -> Event? {
        guard let first = held.first, mayPass(first) else { return nil }
        held.removeFirst()
        passed(first)
        return first
    }

    /// The channel asked to read: `true` to read now, `false` when it is held until
    /// ``readReleased()`` says otherwise.
    mutating func readAsked() -> Bool {
        if held.isEmpty && (inRequest || asked > 0) { return true }
        readPending = true
        return false
    }

    /// Whether a held read should be done now.
    mutating func readReleased() -> Bool {
        guard readPending, held.isEmpty, inRequest || asked > 0 else { return false }
        readPending = false
        return true
    }

    /// Whatever is held, dropped (the gate leaves the pipeline: a stream discards what follows
    /// it); returns whether a read was held.
    mutating func removed() -> Bool {
        held.removeAll()
        defer { readPending = false }
        return readPending
    }

    private func mayPass(_ event: Event) -> Bool {
        switch event {
        case .part(.head):
            return !inRequest && asked > 0
        case .part(.body), .part(.end):
            return inRequest
        case .parserError:
            // Answered as a request of its own (or the one it cut short): after every other.
            let others = unanswered - (inRequest ? 1 : 0)
            return others <= 0 && (inRequest || asked > 0)
        }
    }

    private mutating func passed(_ event: Event) {
        switch event {
        case .part(.head):
            asked -= 1
            inRequest = true
            unanswered += 1
        case .part(.end):
            inRequest = false
        case .part(.body), .parserError:
            break
        }
    }
}
