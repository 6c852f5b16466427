import NIOCore
import NIOSSL
import NIOTLS

/// What an accepted connection is given first, by how the node listens:
/// - TLS (`--tls-cert`): swift-nio-ssl's server handler with the node's current context, a
///   handshake deadline, then by ALPN HTTP/2 (``HTTP2Pipeline``) or HTTP/1.1 (``HTTPPipeline``,
///   whose streams then write through the channel: the bytes must be encrypted);
/// - cleartext with `--h2c`: the ``HTTP2PrefaceSniffer``, then either;
/// - cleartext: HTTP/1 at once, with the socket for a stream's direct writes.
enum ConnectionPipeline {
    static func configure(_ channel: any Channel, services: BrokerServices, socket: Int32, tls: NodeTLSContext?) throws {
        let configuration = services.configuration
        let pipeline = channel.pipeline.syncOperations
        if let tls {
            try pipeline.addHandler(NIOSSLServerHandler(context: tls.context))
            try pipeline.addHandler(TLSHandshakeDeadline(timeout: TimeAmount.clamping(seconds: tls.configuration.handshakeTimeoutSeconds)))
            try pipeline.addHandler(ApplicationProtocolNegotiationHandler { result, channel in
                channel.eventLoop.makeCompletedFuture {
                    if case .negotiated("h2") = result {
                        try HTTP2Pipeline.configure(channel, services: services)
                    } else {
                        try HTTPPipeline.configure(channel.pipeline.syncOperations, services: services, socket: -1)
                    }
                }
            })
        } else if configuration.http2.acceptsCleartext {
            try pipeline.addHandler(HTTP2PrefaceSniffer(timeout: TimeAmount.clamping(seconds: configuration.requestTimeoutSeconds)) { isHTTP2, channel in
                if isHTTP2 {
                    try HTTP2Pipeline.configure(channel, services: services)
                } else {
                    try HTTPPipeline.configure(channel.pipeline.syncOperations, services: services, socket: socket)
                }
            })
        } else {
            try HTTPPipeline.configure(pipeline, services: services, socket: socket)
        }
    }
}
