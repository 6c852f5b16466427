extension RedisConfiguration {
    /// The query parameters read as TLS options, redis-py's names and meanings
    /// (`redis.connection.SSLConnection`, redis-py 8.1):
    ///
    /// | parameter | values | here |
    /// |---|---|---|
    /// | `ssl_cert_reqs` | `none`, `optional`, `required` (default) | `none` → `.none`; `optional` = `required` → `.full` (in Python client mode they are the same) |
    /// | `ssl_ca_certs` | PEM file | trusted in addition to the system roots, as redis-py's `load_verify_locations` |
    /// | `ssl_certfile`, `ssl_keyfile` | PEM files | client certificate and key, both or neither |
    /// | `ssl_check_hostname` | redis-py's booleans (default true) | false → `.noHostname` |
    /// | `ssl_min_version` | `TLSv1_2` (default), `TLSv1_3` | |
    /// | `tls_server_name` | host name | SNI and name check instead of the URL's host (ours) |
    ///
    /// Any other `ssl_*` or `tls_*` parameter is refused: a security option is never ignored
    /// silently. On a plain URL (`secure` false) every such parameter is refused ("needs
    /// rediss://"), as redis-py refuses them there. Other parameters are left to the caller.
    /// Returns nil when not `secure`. Also used by `rediss+sentinel://`.
    static func tlsOptions(
        from parameters: [(name: String, value: String)],
        secure: Bool,
        url: String
    ) throws(RedisConfigurationError) -> RedisTLSOptions? {
        let tlsParameters = parameters.filter { $0.name.hasPrefix("ssl_") || $0.name.hasPrefix("tls_") }
        guard secure else {
            if let first = tlsParameters.first {
                throw RedisConfigurationError(url: url, reason: "\(RedisConfigurationError.shown(Substring(first.name), of: url)) needs a rediss:// URL")
            }
            return nil
        }
        var options = RedisTLSOptions()
        var checkHostname = true
        var verifyNothing = false
        for (name, value) in tlsParameters {
            func file() throws(RedisConfigurationError) -> String {
                guard !value.isEmpty, value.utf8.count <= 4096 else {
                    throw RedisConfigurationError(url: url, reason: "\(name) needs a file path (at most 4096 bytes)")
                }
                return value
            }
            switch name {
            case "ssl_cert_reqs":
                switch value.lowercased() {
                case "none": verifyNothing = true
                case "optional", "required": verifyNothing = false
                default:
                    throw RedisConfigurationError(url: url, reason: "ssl_cert_reqs must be none, optional or required, got \(RedisConfigurationError.shown(Substring(value), of: url))")
                }
            case "ssl_ca_certs": options.caCertificatesFile = try file()
            case "ssl_certfile": options.certificateFile = try file()
            case "ssl_keyfile": options.privateKeyFile = try file()
            case "ssl_check_hostname":
                guard let flag = pythonBoolean(value) else {
                    throw RedisConfigurationError(url: url, reason: "ssl_check_hostname must be true or false, got \(RedisConfigurationError.shown(Substring(value), of: url))")
                }
                checkHostname = flag
            case "ssl_min_version":
                switch value.uppercased() {
                case "TLSV1_2", "TLSV1.2": options.minimumVersion = .tlsv12
                case "TLSV1_3", "TLSV1.3": options.minimumVersion = .tlsv13
                default:
                    throw RedisConfigurationError(url: url, reason: "ssl_min_version must be TLSv1_2 or TLSv1_3, got \(RedisConfigurationError.shown(Substring(value), of: url))")
                }
            case "tls_server_name": options.serverName = value
            default:
                throw RedisConfigurationError(
                    url: url,
                    reason: "unsupported TLS parameter \(RedisConfigurationError.shown(Substring(name), of: url)); supported: ssl_cert_reqs, ssl_ca_certs, "
                        + "ssl_certfile, ssl_keyfile, ssl_check_hostname, ssl_min_version, tls_server_name"
                )
            }
        }
        options.verification = verifyNothing ? .none : (checkHostname ? .full : .noHostname)
        if let problem = options.problem {
            throw RedisConfigurationError(url: url, reason: problem)
        }
        return options
    }

    /// redis-py's `to_bool` spellings (`0 F FALSE N NO` and their opposites); nil for anything else.
    private static func pythonBoolean(_ text: String) -> Bool? {
        switch text.uppercased() {
        case "0", "F", "FALSE", "N", "NO": return false
        case "1", "T", "TRUE", "Y", "YES": return true
        default: return nil
        }
    }
}
