import NIOCore
import NIOHTTP1
import NIOHTTP2

/// The handlers of a connection that speaks HTTP/2 (negotiated by ALPN, or with prior
/// knowledge under `--h2c`), and of each of its streams.
///
/// The connection: SwiftNIO's HTTP/2 handler (its frame parser with its flood and reset-rate
/// limits, flow control, and the stream multiplexer), advertising the node's stream limit and
/// header-list limit, then its connection-management handler, which closes a connection idle for
/// `--idle-timeout` and answers a graceful shutdown with GOAWAY.
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
                maxIdleTime: TimeAmount.clamping(seconds: configuration.idleTimeoutSeconds),
                maxAge: nil,
                // The node's drain closes what is left after --drain-timeout itself.
                maxGraceTime: nil,
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
        // The limit is also kept here, not only advertised: SETTINGS bind a client only once it
        // has acknowledged them, and one that opens streams first (or never acknowledges) is
        // refused each stream beyond the limit.
        let limit = clampedStreams(configuration.http2.maxConcurrentStreams)
        let open = NIOLoopBoundBox(0, eventLoop: channel.eventLoop)
        _ = try pipeline.configureHTTP2Pipeline(
            mode: .server,
            connectionConfiguration: connection,
            streamConfiguration: stream,
            streamDelegate: management.http2StreamDelegate
        ) { streamChannel in
            guard open.value < limit else {
                // Once the stream is set up (HTTP/2's own bookkeeping learns of it after this).
                streamChannel.eventLoop.execute {
                    streamChannel.writeAndFlush(HTTP2Frame.FramePayload.rstStream(.refusedStream), promise: nil)
                    streamChannel.close(promise: nil)
                }
                return streamChannel.eventLoop.makeSucceededVoidFuture()
            }
            open.value += 1
            streamChannel.closeFuture.whenComplete { _ in open.value -= 1 }
            return streamChannel.eventLoop.makeCompletedFuture {
                try configureStream(streamChannel.pipeline.syncOperations, services: services)
            }
        }
        try pipeline.addHandler(management)
        services.prometheus.http2ConnectionsChanged(by: 1)
        channel.closeFuture.whenComplete { _ in services.prometheus.http2ConnectionsChanged(by: -1) }
    }

    /// Adds one HTTP/2 stream's handlers.
    static func configureStream(_ pipeline: ChannelPipeline.SynchronousOperations, services: BrokerServices) throws {
        try pipeline.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
        try pipeline.addHandler(HTTP2StreamDeadline(timeout: TimeAmount.clamping(seconds: services.configuration.requestTimeoutSeconds)))
        try pipeline.addHandler(HTTPRequestHandler(services: services, handoff: .http2))
    }

    /// `--h2-max-streams` within what HTTP/2 and the node allow.
    static func clampedStreams(_ requested: Int) -> Int {
        max(1, min(requested, HTTP2Configuration.maxConcurrentStreamsLimit))
    }
}
