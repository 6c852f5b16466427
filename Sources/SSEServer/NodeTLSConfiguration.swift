/// TLS on the node's own listener (`--tls-cert`, `--tls-key`): the node serves HTTPS, offering
/// HTTP/2 then HTTP/1.1 by ALPN, TLS 1.2 or later only.
public struct NodeTLSConfiguration: Sendable, Hashable {
    /// PEM file of the node's certificate, followed by its chain (leaf first).
    public var certificateChainFile: String
    /// PEM file of the certificate's private key.
    public var privateKeyFile: String
    /// Seconds a connection may take to finish its TLS handshake before it is closed.
    public var handshakeTimeoutSeconds: Double
    /// Seconds between checks of the two files; a change is loaded for new connections, as
    /// SIGHUP does. 0 checks only on SIGHUP.
    public var reloadCheckSeconds: Double

    public init(certificateChainFile: String, privateKeyFile: String, handshakeTimeoutSeconds: Double = 10, reloadCheckSeconds: Double = 5) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.handshakeTimeoutSeconds = handshakeTimeoutSeconds
        self.reloadCheckSeconds = reloadCheckSeconds
    }
}
