import NIOCore

/// The streams open on one HTTP/2 connection, for the node's stream backstop and its idle
/// deadline: a connection with no stream open for `--idle-timeout` is asked to finish (GOAWAY)
/// and closed a moment later, whether or not its client answers the GOAWAY's PING. (SwiftNIO's
/// connection manager would wait for that answer for ever.) Used on the connection's loop only.
final class HTTP2StreamCount {
    private let channel: any Channel
    private let idleTimeout: TimeAmount
    private(set) var open = 0
    private var idleTimer: Scheduled<Void>?

    /// How long a GOAWAY'd idle connection has before it is closed.
    static let closeGrace = TimeAmount.seconds(1)

    init(channel: any Channel, idleTimeout: TimeAmount) {
        self.channel = channel
        self.idleTimeout = idleTimeout
        armIdleTimer()
    }

    func streamOpened() {
        open += 1
        idleTimer?.cancel()
        idleTimer = nil
    }

    func streamClosed() {
        open -= 1
        if open == 0 { armIdleTimer() }
    }

    private func armIdleTimer() {
        let channel = self.channel
        idleTimer = channel.eventLoop.scheduleTask(in: idleTimeout) {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            channel.eventLoop.scheduleTask(in: Self.closeGrace) { channel.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension HTTP2StreamCount: Sendable {}
