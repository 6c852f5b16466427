import SSEWire
import Synchronization

/// The highest history position a process has seen Redis vouch for, in the newest epoch: one
/// for the counter every channel shares, and, where positions are counted per channel
/// (`HistoryConfiguration.Layout.perChannel`), one per channel.
///
/// Publishers pass it to the publish script, and nodes compare it with the counter after a
/// reconnect, so a counter that moved backwards (a restore, a promoted lagging replica, AOF
/// `everysec` after a crash) is caught before it re-issues positions clients already hold.
///
/// Per channel, at most `maximumChannels` are remembered; past that the channel seen longest
/// ago is forgotten. A forgotten channel loses only that check until it is seen again, never
/// the correctness of what is delivered.
public final class HistoryWatermark: Sendable {
    private struct PerChannel {
        var positions: [ChannelName: HistoryPosition] = [:]
        /// Channels in the order they were first remembered (a ring over `positions`' keys).
        var order: [ChannelName] = []
        var oldest = 0
    }

    private let value = Mutex<HistoryPosition?>(nil)
    private let perChannel = Mutex(PerChannel())
    /// Most channels remembered one by one.
    public let maximumChannels: Int

    public init(maximumChannels: Int = 65_536) {
        self.maximumChannels = max(1, maximumChannels)
    }

    /// The highest position seen, if any.
    public var position: HistoryPosition? { value.withLock { $0 } }

    /// Records a position Redis vouched for; a newer epoch replaces an older one.
    public func observe(_ position: HistoryPosition) {
        value.withLock { current in
            if current.map({ $0 < position }) ?? true { current = position }
        }
    }

    /// The highest position seen on `channel`'s own counter, if it is remembered.
    public func position(of channel: ChannelName) -> HistoryPosition? {
        perChannel.withLock { $0.positions[channel] }
    }

    /// Records a position Redis vouched for on `channel`'s own counter.
    public func observe(_ position: HistoryPosition, on channel: ChannelName) {
        perChannel.withLock { state in
            if let current = state.positions[channel] {
                if current < position { state.positions[channel] = position }
                return
            }
            if state.order.count < maximumChannels {
                state.order.append(channel)
            } else {
                state.positions[state.order[state.oldest]] = nil
                state.order[state.oldest] = channel
                state.oldest = (state.oldest + 1) % state.order.count
            }
            state.positions[channel] = position
        }
    }

    /// Channels remembered one by one (tests).
    package var channelCount: Int { perChannel.withLock { $0.positions.count } }
}
