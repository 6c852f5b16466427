import SSERedisTransport

extension RedisConfiguration {
    /// Reads the TLS files (CA, client certificate and key) now and builds the TLS context that
    /// connections will use, so a missing or malformed file fails at startup with its name,
    /// not on every reconnect. Does nothing without `tls`.
    public func checkTLSFiles() throws(RedisError) {
        guard let tls else { return }
        do {
            _ = try TLSContextCache.shared.context(for: tls.tunnelConfiguration)
        } catch {
            throw RedisError(.connectionFailed, "TLS: \(error.message)")
        }
    }
}

extension RedisTLSOptions {
    /// The transport's own (Redis-free) form of these options.
    var tunnelConfiguration: TLSTunnelConfiguration {
        TLSTunnelConfiguration(
            additionalTrustRootsFile: caCertificatesFile,
            certificateChainFile: certificateFile,
            privateKeyFile: privateKeyFile,
            verification: {
                switch verification {
                case .full: return .full
                case .noHostname: return .noHostname
                case .none: return .none
                }
            }(),
            minimumVersion: minimumVersion == .tlsv13 ? .tlsv13 : .tlsv12,
            serverName: serverName
        )
    }
}
