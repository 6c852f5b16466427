/// How to reach Redis over TLS (`rediss://`): which certificates to trust and present, how
/// strictly to check the server's, and the lowest protocol version accepted.
///
/// Only file paths and choices, no TLS library types, so `RedisConfiguration` stays `Hashable`
/// and cheap to copy. The files are read when a connection is made (and again when they
/// change on disk); `RedisConfiguration.checkTLSFiles()` reads them once up front, so a bad
/// file is a startup error rather than a reconnect loop.
public struct RedisTLSOptions: Sendable, Hashable {
    /// How the server's certificate is checked.
    public enum Verification: String, Sendable, Hashable {
        /// Chain to a trusted root, within its validity dates, and naming the host (DNS name,
        /// or an IP address SAN when the host is an address). The default.
        case full
        /// The chain and dates are checked, the name is not (`ssl_check_hostname=false`).
        case noHostname
        /// Nothing is checked (`ssl_cert_reqs=none`): encryption without authentication.
        case none
    }

    /// The lowest TLS version offered. TLS 1.0 and 1.1 are never offered.
    public enum MinimumVersion: String, Sendable, Hashable {
        case tlsv12 = "TLSv1_2"
        case tlsv13 = "TLSv1_3"
    }

    /// PEM file of CA certificates trusted in addition to the system's roots (`ssl_ca_certs`).
    public var caCertificatesFile: String?
    /// PEM file of the client certificate chain, for servers that require one (`ssl_certfile`).
    public var certificateFile: String?
    /// PEM file of the client certificate's private key (`ssl_keyfile`); goes with `certificateFile`.
    public var privateKeyFile: String?
    public var verification: Verification
    public var minimumVersion: MinimumVersion
    /// The name sent in SNI and checked against the certificate, instead of the host connected
    /// to (`tls_server_name`): for a Redis reached by address whose certificate names a host.
    public var serverName: String?

    public init(
        caCertificatesFile: String? = nil,
        certificateFile: String? = nil,
        privateKeyFile: String? = nil,
        verification: Verification = .full,
        minimumVersion: MinimumVersion = .tlsv12,
        serverName: String? = nil
    ) {
        self.caCertificatesFile = caCertificatesFile
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.verification = verification
        self.minimumVersion = minimumVersion
        self.serverName = serverName
    }

    /// Why these options cannot be used, or nil: a client certificate needs its key and a key its certificate.
    public var problem: String? {
        switch (certificateFile, privateKeyFile) {
        case (.some, nil): return "a client certificate (ssl_certfile) needs its key (ssl_keyfile)"
        case (nil, .some): return "a client key (ssl_keyfile) needs its certificate (ssl_certfile)"
        default: break
        }
        if let serverName, serverName.isEmpty || serverName.utf8.count > 255 {
            return "tls_server_name must be 1 to 255 bytes"
        }
        return nil
    }

    /// The options as `rediss://` query parameters, in redis-py's names (file paths shown,
    /// never file contents). Empty for the defaults.
    var queryText: String {
        var parameters: [String] = []
        switch verification {
        case .full: break
        case .noHostname: parameters.append("ssl_check_hostname=false")
        case .none: parameters.append("ssl_cert_reqs=none")
        }
        if let caCertificatesFile { parameters.append("ssl_ca_certs=\(caCertificatesFile)") }
        if let certificateFile { parameters.append("ssl_certfile=\(certificateFile)") }
        if let privateKeyFile { parameters.append("ssl_keyfile=\(privateKeyFile)") }
        if minimumVersion != .tlsv12 { parameters.append("ssl_min_version=\(minimumVersion.rawValue)") }
        if let serverName { parameters.append("tls_server_name=\(serverName)") }
        return parameters.isEmpty ? "" : "?" + parameters.joined(separator: "&")
    }
}
