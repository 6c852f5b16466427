import NIOCore

/// A connection's one deadline that closes it when it passes: the TLS handshake's, the
/// `--h2c` preface's. Started when the handler joins the pipeline, cancelled once what it waits
/// for has come (or the handler leaves).
struct ClosingDeadline {
    private var timer: Scheduled<Void>?

    /// Closes `context`'s channel after `timeout` unless cancelled first.
    mutating func start(_ context: ChannelHandlerContext, after timeout: TimeAmount) {
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            bound.value.close(promise: nil)
        }
    }

    mutating func cancel() {
        timer?.cancel()
        timer = nil
    }
}
