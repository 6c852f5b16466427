#if Hummingbird
import Hummingbird
import SSEStreamCore
import ServiceLifecycle

extension ResponseBody {
    /// A streamed body carrying a broker stream: it writes what `chunks` yields, as it comes,
    /// until the stream ends, the client goes away or a write fails.
    ///
    /// Backpressure is Hummingbird's: each batch is written with the response writer, which waits
    /// while the channel is not writable, and the sink counts a batch as taken only when the
    /// writer has accepted it. So a slow client fills the sink up to its client buffer and the
    /// stream cuts it off past that, as on the standalone server.
    ///
    /// The sink hears `sinkClosed()` however the response ends: the client closing its side of
    /// the connection (seen at once, through `consumeWithInboundCloseHandler`, even while the
    /// stream is idle), a write failing, or the response task being cancelled. A stream that
    /// cuts its client off (``BoundedStreamSink/CutOffError``) makes the body throw, so
    /// Hummingbird closes the connection without ending the chunked body cleanly: the client
    /// sees a cut, not an end. After the body ends Hummingbird closes the connection.
    ///
    /// - Parameters:
    ///   - chunks: The host's side of the stream's ``BoundedStreamSink``.
    ///   - request: The request being answered. Its body must be the one Hummingbird made (not
    ///     replaced by a middleware): Hummingbird traps otherwise. Pipelined requests behind the
    ///     stream are never answered, as on the standalone server.
    ///   - onGracefulShutdown: Runs once when the server begins a graceful shutdown while the
    ///     stream is open (it should end the stream, or the server's drain waits for it).
    public init(
        draining chunks: BoundedStreamSink.Chunks,
        whileConnected request: Request,
        onGracefulShutdown: @escaping @Sendable () -> Void = {}
    ) {
        self.init { writer in
            do {
                try await withGracefulShutdownHandler {
                    try await request.body.consumeWithInboundCloseHandler { _ in
                        var iterator = chunks.makeAsyncIterator()
                        while let batch = try await iterator.nextBatch() {
                            try await writer.write(contentsOf: batch)
                        }
                    } onInboundClosed: {
                        chunks.cancel()
                    }
                } onGracefulShutdown: {
                    onGracefulShutdown()
                }
            } catch {
                chunks.cancel()
                throw error
            }
            try await writer.finish(nil)
        }
    }
}
#endif
