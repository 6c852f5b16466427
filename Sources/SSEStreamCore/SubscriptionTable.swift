import SSEWire

/// Counts a node's stream clients per channel and per event loop; decides when the node must
/// SUBSCRIBE (first client of a channel) and UNSUBSCRIBE (last one gone), and keeps each
/// channel's history position for as long as the channel has clients, and no longer.
///
/// A pure value in the shape of postgres-nio's `ListenStateMachine`: it returns what to do
/// and does no I/O, so the refcounting is tested without Redis. Channels are compared as bytes
/// (`ChannelName`), as Redis compares them.
package struct SubscriptionTable {
    /// What the caller must tell Redis.
    package enum Action: Equatable {
        case none
        case subscribe(ChannelName)
        case unsubscribe(ChannelName)
    }

    private struct Entry {
        /// loop index → clients of the channel on that loop
        var perLoop: [Int: Int] = [:]
        /// The newest position of the channel the node knows of: where a catch-up for its
        /// clients starts after the subscription or a loop fell behind.
        var position: HistoryPosition?
    }

    private var entries: [ChannelName: Entry] = [:]
    /// With positions per channel, positions of different channels are not comparable: there
    /// is no `newest` for all channels, and a new channel starts with no position.
    private let positionsPerChannel: Bool

    package init(positionsPerChannel: Bool = false) {
        self.positionsPerChannel = positionsPerChannel
    }

    /// The newest history position the node knows of on any channel, or the counter it last
    /// read: positions are one counter for all channels, so this is a lower bound for the next
    /// position of every channel. A channel's first client starts its channel there, so even a
    /// channel first wanted while the subscription is down is caught up from that point.
    private(set) var newest: HistoryPosition?

    /// Channels with at least one client.
    package var channelCount: Int { entries.count }

    /// Records a client of `channel` on loop `loop`.
    package mutating func add(channel: ChannelName, loop: Int) -> Action {
        let isFirst = entries[channel] == nil
        entries[channel, default: Entry(position: positionsPerChannel ? nil : newest)].perLoop[loop, default: 0] += 1
        return isFirst ? .subscribe(channel) : .none
    }

    /// Forgets a client of `channel` on loop `loop`; the channel's state goes with its last client.
    package mutating func remove(channel: ChannelName, loop: Int) -> Action {
        guard var entry = entries[channel], let count = entry.perLoop[loop] else {
            preconditionFailure("removing a client that was never added: \(channel) on loop \(loop)")
        }
        if count > 1 {
            entry.perLoop[loop] = count - 1
        } else {
            entry.perLoop[loop] = nil
        }
        if entry.perLoop.isEmpty {
            entries[channel] = nil
            return .unsubscribe(channel)
        }
        entries[channel] = entry
        return .none
    }

    /// Moves `channel`'s position forward to `position` (never back), if the channel still has clients.
    package mutating func advance(_ channel: ChannelName, to position: HistoryPosition) {
        observe(position)
        guard var entry = entries[channel] else { return }
        if entry.position.map({ $0 < position }) ?? true {
            entry.position = position
            entries[channel] = entry
        }
    }

    /// Records a position Redis vouched for (the counter, or any channel's event).
    ///
    /// The first one the node learns is also where every channel first wanted before it stands
    /// (streams opened while the node's first counter read was in flight): otherwise a catch-up
    /// would start those channels at the newest position known by then, which after an outage
    /// is past everything published during it.
    package mutating func observe(_ position: HistoryPosition) {
        if positionsPerChannel { return }
        guard let known = newest else {
            newest = position
            for (channel, entry) in entries where entry.position == nil { entries[channel]?.position = position }
            return
        }
        if known < position { newest = position }
    }

    /// Every channel's known position.
    package var positions: [ChannelName: HistoryPosition] {
        entries.compactMapValues(\.position)
    }

    /// Where `channel` stands, if it has clients and a known position.
    package func position(of channel: ChannelName) -> HistoryPosition? {
        entries[channel]?.position
    }

    /// The loops that have clients of `channel`.
    package func loops(for channel: ChannelName) -> Dictionary<Int, Int>.Keys? {
        entries[channel]?.perLoop.keys
    }

    /// Clients of `channel` on this node.
    package func clientCount(for channel: ChannelName) -> Int {
        entries[channel]?.perLoop.values.reduce(0, +) ?? 0
    }
}
