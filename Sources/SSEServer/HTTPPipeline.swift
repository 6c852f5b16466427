import NIOCore
import NIOHTTP1
import SSEStreamCore

/// The handlers of one admitted HTTP connection, in order: the request and idle timeouts with
/// read backpressure while responses cannot be written, SwiftNIO's HTTP/1 server codec with the
/// node's head limits, the request gate (pipelined requests, in place of SwiftNIO's
/// one-at-a-time pipelining handler), the broker's protocol-error answers, and the request
/// handler.
///
/// ``BrokerServer`` installs it on every accepted socket; tests and fuzz targets install it on
/// an `EmbeddedChannel` to drive the request path with bytes in, bytes out.
enum HTTPPipeline {
    /// The HTTP handlers ``configure(_:services:socket:)`` installed beside the request handler,
    /// which a stream replaces. Held inline (no array), since every connection carries them.
    struct StreamReplaced {
        let gate: HTTPRequestGate
        let responder: HTTPProtocolErrorResponder
        let validator: NIOHTTPResponseHeadersValidator
        let encoder: HTTPResponseEncoder
        let decoder: ByteToMessageHandler<HTTPRequestDecoder>

        /// Removes them, the gate first: it drops what it held back and lets reads go on.
        func remove(from pipeline: ChannelPipeline.SynchronousOperations) {
            pipeline.removeHandler(gate, promise: nil)
            pipeline.removeHandler(responder, promise: nil)
            pipeline.removeHandler(validator, promise: nil)
            pipeline.removeHandler(encoder, promise: nil)
            pipeline.removeHandler(decoder, promise: nil)
        }
    }

    /// SwiftNIO's decoder limits for `--max-head-bytes`.
    static func decoderLimits(maxHeadBytes: Int) -> NIOHTTPDecoderLimitConfiguration {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = maxHeadBytes
        limits.maxHeaderListSize = maxHeadBytes
        return limits
    }

    /// Adds the HTTP handlers to `pipeline`. `socket` is the connection's descriptor, which a
    /// request that becomes a stream writes to directly; pass `-1` where there is none (an
    /// `EmbeddedChannel`): a stream then writes through the channel only.
    ///
    /// The request handler is handed the exact handlers added here (other than itself), which a
    /// stream upgrade removes: it need not know how the pipeline was built.
    static func configure(_ pipeline: ChannelPipeline.SynchronousOperations, services: BrokerServices, socket: Int32) throws {
        let configuration = services.configuration
        let maxHeadBytes = configuration.maxHeadBytes
        let timeout = RequestTimeoutHandler(
            requestTimeout: TimeAmount.clamping(seconds: configuration.requestTimeoutSeconds),
            idleTimeout: TimeAmount.clamping(seconds: configuration.idleTimeoutSeconds)
        )
        try pipeline.addHandler(timeout)
        try pipeline.configureHTTPServerPipeline(
            withPipeliningAssistance: false,
            withErrorHandling: false,
            withEncoderConfiguration: .init(),
            withDecoderLimitConfiguration: decoderLimits(maxHeadBytes: maxHeadBytes)
        )
        // SwiftNIO pairs its decoder with its encoder internally, so its codec is added by its
        // own helper and its three handlers are collected here, once, where the pipeline is known.
        let gate = HTTPRequestGate()
        try pipeline.addHandler(gate)
        let responder = HTTPProtocolErrorResponder(maxHeadBytes: maxHeadBytes)
        try pipeline.addHandler(responder)
        // The request timeout leaves by itself when told the connection became a stream.
        let replaced = StreamReplaced(
            gate: gate,
            responder: responder,
            validator: try pipeline.handler(type: NIOHTTPResponseHeadersValidator.self),
            encoder: try pipeline.handler(type: HTTPResponseEncoder.self),
            decoder: try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        )
        try pipeline.addHandler(HTTPRequestHandler(services: services, handoff: .http1(replaced, socket: socket)))
    }
}
