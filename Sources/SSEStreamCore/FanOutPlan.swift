import NIOCore
import SSEWire

/// How one read of the subscription reaches the event loops: pure grouping, no I/O.
///
/// Each loop gets every event routed to it in publish order (for multi-channel streams) and,
/// per channel in order of first appearance, one ``ChannelBatch`` with that channel's events
/// joined once (for single-channel streams: one write per client per read). A batch is built
/// once and shared by every loop the channel is routed to. The newest position per channel is
/// kept for the subscription table.
package struct FanOutPlan {
    private let loopCount: Int
    private var ordered: [[RoutedEvent]]
    /// Channels in order of first appearance, with the loops each is routed to and its events.
    private var channels: [(channel: ChannelName, loops: [Int], events: [EncodedEvent])] = []
    private var slot: [ChannelName: Int] = [:]
    /// The newest history position per channel among the events added.
    package private(set) var newest: [ChannelName: HistoryPosition] = [:]

    package init(loopCount: Int) {
        self.loopCount = loopCount
        self.ordered = Array(repeating: [], count: loopCount)
    }

    /// Adds an event of `channel`, routed to `loops` (indices below `loopCount`; others are ignored).
    package mutating func add(_ event: EncodedEvent, channel: ChannelName, loops: [Int]) {
        let routed = RoutedEvent(channel: channel, event: event)
        for loop in loops where loop >= 0 && loop < loopCount { ordered[loop].append(routed) }
        if let position = event.position { newest[channel] = max(newest[channel] ?? position, position) }
        if let index = slot[channel] {
            channels[index].events.append(event)
        } else {
            slot[channel] = channels.count
            channels.append((channel, loops, [event]))
        }
    }

    /// One delivery per loop (empty for a loop nothing is routed to).
    package func deliveries(allocator: ByteBufferAllocator) -> [LoopDelivery] {
        var deliveries = ordered.map { LoopDelivery(batches: [], ordered: $0) }
        for entry in channels {
            let batch = ChannelBatch(channel: entry.channel, events: entry.events, allocator: allocator)
            for loop in entry.loops where loop >= 0 && loop < loopCount { deliveries[loop].batches.append(batch) }
        }
        return deliveries
    }
}
