/// Group commit for history publishes, as pure state: at most one publish-script call per channel
/// is in flight; what is submitted for a channel meanwhile waits and goes out with the next call,
/// in submission order, so a channel's call order is its id order.
///
/// A lone publish goes at once (nothing waits at low rates). Under load the wait is one round
/// trip, and the events that gathered share one script call: Redis's fixed cost per call (epoch
/// checks, `EXPIRE`, `SET`, the call itself) is paid per batch instead of per event.
///
/// Bounded: a channel holds at most `maximumWaitingEvents` waiting events (or one request, however
/// large, when nothing else waits); beyond that a submit is refused (nothing waits for room). A batch takes whole requests while it stays within
/// `maximumEvents` and `maximumBytes`, and always at least one request (a larger request is cut
/// into script calls of those bounds by the store).
struct PublishBatchQueues<Request> {
    /// One caller's publish: its events, their payload bytes, and what to tell it.
    struct Entry {
        let request: Request
        let events: Int
        let bytes: Int
    }

    /// What a submit needs the caller to do.
    enum SubmitAction {
        /// Nothing was in flight for the channel: send this batch (the submitted request alone).
        case send([Entry])
        /// A call for the channel is in flight: the request waits for the next batch.
        case queued
        /// The channel's waiting events are at the bound: refuse the request.
        case refused
    }

    private struct ChannelQueue {
        var waiting: [Entry] = []
        var head = 0
        var waitingEvents = 0
    }

    let maximumEvents: Int
    let maximumBytes: Int
    let maximumWaitingEvents: Int
    /// Channels with a call in flight (and what waits behind it).
    private var channels: [String: ChannelQueue] = [:]

    init(maximumEvents: Int, maximumBytes: Int, maximumWaitingEvents: Int) {
        self.maximumEvents = max(1, maximumEvents)
        self.maximumBytes = max(1, maximumBytes)
        self.maximumWaitingEvents = max(1, maximumWaitingEvents)
    }

    /// Channels with a call in flight.
    var busyChannels: Int { channels.count }

    /// Events waiting on `channel` behind its call in flight.
    func waitingEvents(on channel: String) -> Int { channels[channel]?.waitingEvents ?? 0 }

    mutating func submit(_ request: Request, events: Int, bytes: Int, channel: String) -> SubmitAction {
        let entry = Entry(request: request, events: events, bytes: bytes)
        guard var queue = channels[channel] else {
            channels[channel] = ChannelQueue()
            return .send([entry])
        }
        guard queue.waitingEvents == 0 || queue.waitingEvents + events <= maximumWaitingEvents else {
            return .refused
        }
        channels[channel] = nil  // keep the queue uniquely referenced while it grows
        queue.waiting.append(entry)
        queue.waitingEvents += events
        channels[channel] = queue
        return .queued
    }

    /// The call in flight for `channel` finished: the next batch to send, or nil when nothing
    /// waits (the channel is idle again and its next submit goes at once).
    mutating func completed(channel: String) -> [Entry]? {
        guard var queue = channels.removeValue(forKey: channel) else { return nil }
        guard queue.head < queue.waiting.count else { return nil }
        var batch: [Entry] = []
        var events = 0
        var bytes = 0
        while queue.head < queue.waiting.count {
            let next = queue.waiting[queue.head]
            if !batch.isEmpty, events + next.events > maximumEvents || bytes + next.bytes > maximumBytes { break }
            batch.append(next)
            events += next.events
            bytes += next.bytes
            queue.head += 1
        }
        queue.waitingEvents -= events
        if queue.head == queue.waiting.count {
            queue.waiting.removeAll(keepingCapacity: false)
            queue.head = 0
        } else if queue.head >= 1024 && queue.head * 2 >= queue.waiting.count {
            queue.waiting.removeFirst(queue.head)
            queue.head = 0
        }
        channels[channel] = queue
        return batch
    }
}
