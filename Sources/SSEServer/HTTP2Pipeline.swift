import NIOCore
import NIOHTTP1
import NIOHTTP2

/// The handlers of a connection that speaks HTTP/2 (negotiated by ALPN, or with prior
/// knowledge under `--h2c`), and of each of its streams.
///
/// The connection: a ``FlushCoalescer`` (one write per loop turn however many streams flush),
/// SwiftNIO's HTTP/2 handler (its frame parser with its flood and reset-rate
/// limits, flow control, and the stream multiplexer), advertising the node's stream limit and
/// header-list limit, then its connection-management handler, which closes a connection idle for
/// answers a graceful shutdown with GOAWAY. Below the HTTP/2 handler, an
/// ``HTTP2ErrorGoAwayCloser`` closes the connection after a GOAWAY for a connection error. An
/// ``HTTP2StreamCount`` closes a connection without streams for `--idle-timeout`.
///
/// Each stream: SwiftNIO's HTTP/2-to-HTTP/1 codec, so the stream's request reaches the same
/// ``HTTPRequestHandler`` as over HTTP/1 (routes, auth, CORS, publish, limits), a request
/// deadline, and the handler. A request that becomes an event stream is carried by an
/// ``HTTP2StreamSink`` on its HTTP/2 stream alone.
enum HTTP2Pipeline {
    /// Adds the HTTP/2 connection handlers to `channel`'s pipeline.
    static func configure(_ channel: any Channel, services: BrokerServices) throws {
        let configuration = services.configuration
        let pipeline = channel.pipeline.syncOperations
        let management = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(
                // Idle connections are closed by ``HTTP2StreamCount``, which does not wait for
                // the client to answer the GOAWAY's PING.
                maxIdleTime: nil,
                maxAge: nil,
                // After the second GOAWAY; the node's drain closes what is left after
                // --drain-timeout itself, whether or not the client answers the PING.
                maxGraceTime: TimeAmount.clamping(seconds: configuration.drainTimeoutSeconds),
                keepalive: nil
            )
        )
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: clampedStreams(configuration.http2.maxConcurrentStreams)),
            HTTP2Setting(parameter: .maxHeaderListSize, value: max(1024, min(configuration.maxHeadBytes, 1 << 24))),
            HTTP2Setting(parameter: .initialWindowSize, value: 65535),
        ]
        let stream = NIOHTTP2Handler.StreamConfiguration()
        try pipeline.addHandler(HTTP2ErrorGoAwayCloser())
        try pipeline.addHandler(FlushCoalescer())
        // A backstop besides the advertised limit, which binds a client only once it has
        // acknowledged the node's SETTINGS: one that opens streams first (or never acknowledges)
        // is refused every stream beyond twice the limit. Twice, because a client that follows
        // the limit may open a stream the moment one of its own closed, before the node has
        // seen that stream's end.
        let limit = 2 * clampedStreams(configuration.http2.maxConcurrentStreams)
        let publishes = NIOLoopBound(HTTP2PublishBudget(), eventLoop: channel.eventLoop)
        let streams = NIOLoopBound(
            HTTP2StreamCount(channel: channel, idleTimeout: TimeAmount.clamping(seconds: configuration.idleTimeoutSeconds)),
            eventLoop: channel.eventLoop
        )
        _ = try pipeline.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: connection,
            streamConfiguration: stream,
            streamDelegate: management.http2StreamDelegate
        ) { streamChannel in
            guard streams.value.open < limit else {
                return streamChannel.eventLoop.makeCompletedFuture {
                    try streamChannel.pipeline.syncOperations.addHandler(HTTP2StreamRefuser())
                }
            }
            streams.value.streamOpened()
            streamChannel.closeFuture.whenComplete { _ in
                if channel.isActive { streams.value.streamClosed() }
            }
            return streamChannel.eventLoop.makeCompletedFuture {
                try configureStream(streamChannel.pipeline.syncOperations, services: services, publishes: publishes.value)
            }
        }
        try pipeline.addHandler(management)
        services.prometheus.http2ConnectionsChanged(by: 1)
        channel.closeFuture.whenComplete { _ in
            streams.value.cancel()
            services.prometheus.http2ConnectionsChanged(by: -1)
        }
    }

    /// Adds one HTTP/2 stream's handlers.
    static func configureStream(_ pipeline: ChannelPipeline.SynchronousOperations, services: BrokerServices, publishes: HTTP2PublishBudget) throws {
        try pipeline.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
        try pipeline.addHandler(HTTP2StreamDeadline(
            requestTimeout: TimeAmount.clamping(seconds: services.configuration.requestTimeoutSeconds),
            answerTimeout: TimeAmount.clamping(seconds: services.configuration.idleTimeoutSeconds)
        ))
        try pipeline.addHandler(HTTPRequestHandler(services: services, handoff: .http2(publishes)))
    }

    /// `--h2-max-streams` within what HTTP/2 and the node allow.
    static func clampedStreams(_ requested: Int) -> Int {
        max(1, min(requested, HTTP2Configuration.maxConcurrentStreamsLimit))
    }
}
