import NIOCore
import SSEWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The standalone node's stream sink: a connection after it became an event stream. The HTTP
/// handlers are gone, only this remains, carrying out its ``StreamClient``'s writes.
///
/// It writes the node's shared preamble once, then the shared pre-framed bytes of each event.
/// It keeps no request state, so an idle stream costs little. Input from the client is
/// discarded (an EventSource sends nothing after its request), but reading continues so a
/// disconnect is noticed at once. The channel's high-water mark is `--client-buffer`, so the
/// stream's delivery needs the exact backlog only once the channel is not writable.
///
/// An event that is written and flushed at once (the last delivery queued on the loop: at
/// ordinary rates, every one) goes straight to the socket with one `send` while SwiftNIO holds
/// nothing unsent for this client, the usual case for a client that keeps up: it skips the
/// channel's write machinery, the larger part of a write's cost. Deliveries that pile up while
/// the loop is busy are queued on the channel and leave together in one `writev` at the flush.
/// Whatever the kernel does not take, and everything after it until SwiftNIO has sent it, goes
/// through the channel as before, so order, backpressure and the `--client-buffer` cut-off are
/// unchanged.
package final class StreamConnectionHandler: ChannelInboundHandler, RemovableChannelHandler, StreamSink {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    /// Makes the stream once the handler is in the pipeline; let go of then (the stream keeps
    /// what it needs, and an idle connection should not keep it twice).
    private var makeClient: ((StreamConnectionHandler, any EventLoop) -> StreamClient)?
    private let clientBufferBytes: Int
    /// The stream this connection carries, once the handler is in the pipeline.
    package private(set) var client: StreamClient?
    /// The connection's socket while the channel is open, for direct writes.
    private var socket: Int32?
    /// SwiftNIO may hold unsent bytes for this client: direct writes wait until it does not.
    private var nioMayHoldBytes = true
    private var context: ChannelHandlerContext?
    private var options: NIOSynchronousChannelOptions?
    /// Bytes written but not flushed yet: they are queued by design (one flush per loop turn),
    /// so they do not count against the client's buffer.
    private var unflushedBytes = 0

    /// - Parameter makeClient: the stream, for this sink on its loop (made once the handler is
    ///   in the pipeline).
    package init(clientBufferBytes: Int, socket: Int32, makeClient: @escaping (StreamConnectionHandler, any EventLoop) -> StreamClient) {
        self.clientBufferBytes = clientBufferBytes
        self.socket = socket
        self.makeClient = makeClient
    }

    /// A stream of `channels` on the node's `hub`, with its chunked framing and `preamble`.
    package convenience init(
        channels: [ChannelName],
        resumeFrom: String?,
        isChunked: Bool,
        preamble: ByteBuffer,
        expiresAt: Double?,
        hub: StreamHub,
        clientBufferBytes: Int,
        socket: Int32
    ) {
        self.init(clientBufferBytes: clientBufferBytes, socket: socket) { sink, loop in
            StreamClient(
                channels: channels,
                resumeFrom: resumeFrom,
                expiresAt: expiresAt,
                opening: preamble,
                isChunked: isChunked,
                clientBufferBytes: clientBufferBytes,
                hub: hub,
                sink: sink,
                eventLoop: loop
            )
        }
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.options = context.channel.syncOptions
        let high = max(1, clientBufferBytes)
        try? options?.setOption(.writeBufferWaterMark, value: .init(low: max(1, high / 2), high: high))
        guard let makeClient else { return }
        self.makeClient = nil
        let client = makeClient(self, context.eventLoop)
        self.client = client
        client.sinkWritabilityChanged(isWritable: context.channel.isWritable)
        client.start(isActive: context.channel.isActive)
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        release()
        self.context = nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Discarded on purpose, whatever its type: requests pipelined behind a stream are never
        // answered, because the stream never ends.
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        client?.sinkWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    /// Lets go of the stream once the connection is closed.
    private func release() {
        // SwiftNIO has closed the descriptor; its number may soon belong to another connection.
        socket = nil
        client?.sinkClosed()
        client = nil
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            client?.finish()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Ends the stream cleanly (the HTTP handler asks this when a drain began during the upgrade).
    package func finish() {
        client?.finish()
    }

    // MARK: StreamSink

    package func write(_ bytes: ByteBuffer) {
        guard let context else { return }
        unflushedBytes += bytes.readableBytes
        nioMayHoldBytes = true
        context.write(wrapOutboundOut(bytes), promise: nil)
    }

    package func flush() {
        unflushedBytes = 0
        context?.flush()
    }

    /// An event that is written and flushed at once (the last delivery queued on the loop: at
    /// ordinary rates, every one) goes straight to the socket with one `send` while SwiftNIO
    /// holds nothing unsent for this client, the usual case for a client that keeps up: it
    /// skips the channel's write machinery, the larger part of a write's cost. Whatever the
    /// kernel does not take, and everything after it until SwiftNIO has sent it, goes through
    /// the channel, so order, backpressure and the `--client-buffer` cut-off are unchanged.
    package func writeAndFlush(_ bytes: ByteBuffer) {
        if let rest = writeDirectly(bytes) {
            write(rest)
            flush()
        }
    }

    package var unreadBytes: Int {
        guard let backlog = try? options?.getOption(.bufferedWritableBytes) else { return 0 }
        return max(0, backlog - unflushedBytes)
    }

    package func end(after last: ByteBuffer?) {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(last ?? ByteBuffer())).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    package func abort() {
        context?.close(promise: nil)
    }

    /// Sends `bytes` straight to the socket if SwiftNIO holds nothing unsent for this client;
    /// returns what is left for the channel to send after it (all of it when nothing went out:
    /// no direct write now, a full socket buffer, or an error the channel's own write meets and
    /// handles by closing), nil when the kernel took everything.
    private func writeDirectly(_ bytes: ByteBuffer) -> ByteBuffer? {
        guard let socket, nioHoldsNothing() else { return bytes }
        let sent = bytes.withUnsafeReadableBytes { pointer in
            send(socket, pointer.baseAddress, pointer.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        }
        guard sent < bytes.readableBytes else { return nil }
        var rest = bytes
        rest.moveReaderIndex(forwardBy: max(0, sent))
        return rest
    }

    /// Whether SwiftNIO has sent everything it was given for this client (asked only after the
    /// channel was used, so a client that keeps up never pays for the question).
    private func nioHoldsNothing() -> Bool {
        guard nioMayHoldBytes else { return true }
        guard unflushedBytes == 0, (try? options?.getOption(.bufferedWritableBytes)) == 0 else { return false }
        nioMayHoldBytes = false
        return true
    }
}
