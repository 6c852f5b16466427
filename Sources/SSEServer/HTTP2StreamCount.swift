import NIOCore

/// The streams open on one HTTP/2 connection, for the node's stream backstop and its idle
/// deadline: a connection with no stream open for `--idle-timeout` is asked to finish (GOAWAY)
/// and closed a moment later, whether or not its client answers the GOAWAY's PING. (SwiftNIO's
/// connection manager would wait for that answer for ever.) A stream opened in that moment
/// keeps the connection. Used on the connection's loop only; its timers end with the connection.
final class HTTP2StreamCount {
    private let channel: any Channel
    private let idleTimeout: TimeAmount
    private(set) var open = 0
    private var timer: Scheduled<Void>?

    /// How long a GOAWAY'd idle connection has before it is closed.
    static let closeGrace = TimeAmount.seconds(1)

    init(channel: any Channel, idleTimeout: TimeAmount) {
        self.channel = channel
        self.idleTimeout = idleTimeout
        armIdleTimer()
    }

    func streamOpened() {
        open += 1
        cancel()
    }

    func streamClosed() {
        open -= 1
        if open == 0 { armIdleTimer() }
    }

    /// The connection closed: nothing more to time.
    func cancel() {
        timer?.cancel()
        timer = nil
    }

    private func armIdleTimer() {
        guard channel.isActive else { return }
        let bound = NIOLoopBound(self, eventLoop: channel.eventLoop)
        timer = channel.eventLoop.scheduleTask(in: idleTimeout) {
            let count = bound.value
            count.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            count.timer = count.channel.eventLoop.scheduleTask(in: Self.closeGrace) {
                if bound.value.open == 0 { bound.value.channel.close(promise: nil) }
            }
        }
    }
}

@available(*, unavailable)
extension HTTP2StreamCount: Sendable {}
