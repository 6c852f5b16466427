import NIOCore
import SSEEndpoints

/// What ``HTTPRequestHandler`` tells ``RequestTimeoutHandler`` about the request in hand, sent
/// toward the head of the pipeline as a user outbound event.
enum HTTPConnectionEvent: Sendable {
    /// A request ended, or its answer started before it ended: stop timing it.
    case requestEnded
    /// A response ended and the connection stays open.
    case responseEnded
    /// The request became a stream: no timer applies from now on.
    case becameStream
    /// The request handler can take another request now (``HTTPRequestGate`` lets one through).
    case nextRequest
}

/// Enforces `--request-timeout` and `--idle-timeout` on a connection until it becomes a stream,
/// carrying out ``RequestTimeoutStateMachine``'s actions with one scheduled task.
///
/// Sits first in the pipeline, so it sees every received byte before the HTTP decoder does. A
/// request that did not arrive in time is answered 408 with `Connection: close` when part of it
/// came; a connection that sent nothing, or nothing since its last response, is closed quietly,
/// and so is one whose answer has made no progress for `--idle-timeout` (a peer that does not
/// read).
///
/// It also holds reads while the channel is not writable (SwiftNIO's `BackPressureHandler`'s
/// job, folded in so the HTTP phase costs one handler less): a client that pipelines requests
/// and never reads the answers stops being read instead of growing the node's memory.
final class RequestTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var machine: RequestTimeoutStateMachine
    /// The one pending deadline. A scheduled callback with this handler as its target, rather
    /// than a scheduled closure: no closure, promise or future allocated per deadline on every
    /// connection (the heap of a connection burst's HTTP phase stays behind its streams).
    private var timer: NIOScheduledCallback?
    /// Set while the handler is in a pipeline, for the callback.
    private var context: ChannelHandlerContext?
    private var started = false
    /// A read asked for while the channel was not writable, to be done once it is.
    private var pendingRead = false
    /// As the last writability change said.
    private var writable = true

    init(requestTimeout: TimeAmount, idleTimeout: TimeAmount) {
        machine = RequestTimeoutStateMachine(requestTimeout: requestTimeout, idleTimeout: idleTimeout)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
        readIfPending(context: context)
    }

    func read(context: ChannelHandlerContext) {
        if writable {
            context.read()
        } else {
            pendingRead = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        if writable {
            readIfPending(context: context)
        } else {
            context.flush()
        }
        context.fireChannelWritabilityChanged()
    }

    private func readIfPending(context: ChannelHandlerContext) {
        guard pendingRead else { return }
        pendingRead = false
        context.read()
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        run(machine.finish(), context: context)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        run(machine.bytesReceived(now: context.eventLoop.now), context: context)
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? HTTPConnectionEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch event {
        case .requestEnded:
            run(machine.requestEnded(now: context.eventLoop.now), context: context)
        case .responseEnded:
            run(machine.responseEnded(now: context.eventLoop.now), context: context)
        case .becameStream:
            run(machine.finish(), context: context)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        case .nextRequest:
            break  // the gate's, which sits after this handler
        }
        promise?.succeed()
    }

    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        run(machine.connected(now: context.eventLoop.now), context: context)
    }

    private func run(_ action: RequestTimeoutStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .schedule(let deadline):
            timer?.cancel()
            // Scheduling fails only on a loop that is shutting down, which closes the connection.
            timer = try? context.eventLoop.assumeIsolated().scheduleCallback(at: deadline, handler: self)
        case .cancelTimer:
            timer?.cancel()
            timer = nil
        case .close:
            context.close(promise: nil)
        case .requestTimeout:
            let seconds = Double(machine.requestTimeout.nanoseconds) / 1e9
            let error = HTTPError(.requestTimeout, "request not received within \(seconds) seconds")
            let buffer = HTTPResponseWriter.bytes(.error(error, closeAfter: true), allocator: context.channel.allocator)
            // Closed at once, not when the write completes: a client that does not read would
            // otherwise keep the connection. A writable socket has taken the answer by then.
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            context.close(promise: nil)
        }
    }
}

extension RequestTimeoutHandler: NIOScheduledCallbackHandler {
    func handleScheduledCallback(eventLoop: some EventLoop) {
        timer = nil
        guard let context else { return }
        run(machine.timerFired(now: eventLoop.now), context: context)
    }
}

@available(*, unavailable)
extension RequestTimeoutHandler: Sendable {}
