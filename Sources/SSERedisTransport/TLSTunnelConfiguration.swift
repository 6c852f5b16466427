/// What a `TLSTunnel` trusts, presents and checks: file paths and choices, no TLS library types.
///
/// Generic on purpose (no protocol above TLS is named here): the tunnel carries bytes for any
/// blocking client that wants a socket. TLS 1.0 and 1.1 are never offered.
public struct TLSTunnelConfiguration: Sendable, Hashable {
    /// How the server's certificate is checked.
    public enum Verification: Sendable, Hashable {
        /// Chain to a trusted root, validity dates, and the server's name (or IP address SAN).
        case full
        /// Chain and dates, not the name.
        case noHostname
        /// Nothing: encrypted, not authenticated.
        case none
    }

    /// The lowest protocol version offered.
    public enum MinimumVersion: Sendable, Hashable {
        case tlsv12
        case tlsv13
    }

    /// PEM file of CA certificates trusted besides the system roots.
    public var additionalTrustRootsFile: String?
    /// PEM file of the client certificate chain (leaf first).
    public var certificateChainFile: String?
    /// PEM file of the client certificate's private key.
    public var privateKeyFile: String?
    public var verification: Verification
    public var minimumVersion: MinimumVersion
    /// SNI and the name checked instead of the host connected to.
    public var serverName: String?

    public init(
        additionalTrustRootsFile: String? = nil,
        certificateChainFile: String? = nil,
        privateKeyFile: String? = nil,
        verification: Verification = .full,
        minimumVersion: MinimumVersion = .tlsv12,
        serverName: String? = nil
    ) {
        self.additionalTrustRootsFile = additionalTrustRootsFile
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.verification = verification
        self.minimumVersion = minimumVersion
        self.serverName = serverName
    }

    /// The files this configuration reads, in a fixed order.
    var files: [String?] { [additionalTrustRootsFile, certificateChainFile, privateKeyFile] }
}
