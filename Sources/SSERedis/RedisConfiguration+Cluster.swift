/// The Redis Cluster URL form: `redis+cluster://[[user]:password@]h1[:6379],h2:7001[/0][?…]`
/// (`rediss+cluster://` over TLS to every node, with redis-py's `ssl_*` parameters), and
/// `?pubsub=both|classic|sharded` (see `ClusterEndpoint.PubSub`) and `?history=per-channel|shared`
/// (see `ClusterEndpoint.History`).
///
/// The user-info authenticates to every node; ports default to 6379, IPv6 goes in brackets. A
/// cluster serves only database 0, so another database is refused, and so is every query
/// parameter but `pubsub`, `history` and the TLS ones (over TLS): a misspelt option never
/// passes silently.
extension RedisConfiguration {
    static func parseCluster(_ remainder: Substring, url: String, tls: Bool) throws(RedisConfigurationError) -> RedisConfiguration {
        let (main, query) = splitAtQuery(remainder)
        let (username, password, afterCredentials) = try splitCredentials(main, url: url)
        var nodes = afterCredentials
        if let slash = afterCredentials.firstIndex(of: "/") {
            nodes = afterCredentials[..<slash]
            let path = afterCredentials[afterCredentials.index(after: slash)...]
            if !path.isEmpty, try parseDatabase(path, url: url) != 0 {
                throw RedisConfigurationError(url: url, reason: "Redis Cluster has only database 0")
            }
        }
        let seeds = try parseNodeList(nodes, defaultPort: ClusterEndpoint.defaultPort, maximum: ClusterEndpoint.maximumSeeds, kind: "cluster node", url: url)
        var tlsParameters: [(name: String, value: String)] = []
        var pubsub = ClusterEndpoint.PubSub.both
        var history = ClusterEndpoint.History.perChannel
        for (key, value) in queryPairs(query) {
            switch key {
            case "db":
                if try parseDatabase(value, url: url) != 0 {
                    throw RedisConfigurationError(url: url, reason: "Redis Cluster has only database 0")
                }
            case "pubsub":
                guard let chosen = ClusterEndpoint.PubSub(rawValue: String(value)) else {
                    throw RedisConfigurationError(url: url, reason: "pubsub must be both, classic or sharded")
                }
                pubsub = chosen
            case "history":
                guard let chosen = ClusterEndpoint.History(rawValue: String(value)) else {
                    throw RedisConfigurationError(url: url, reason: "history must be per-channel or shared")
                }
                history = chosen
            default:
                try takeTLSParameter(
                    key, value, into: &tlsParameters, tls: tls, scheme: "rediss+cluster://", otherwise: "a cluster URL takes pubsub=, history= and TLS parameters", url: url
                )
            }
        }
        if pubsub == .sharded, history == .shared {
            // History in one slot publishes classically: a node without a classic link would miss it.
            throw RedisConfigurationError(url: url, reason: "pubsub=sharded needs history=per-channel")
        }
        return RedisConfiguration(
            endpoint: .cluster(ClusterEndpoint(seeds: seeds, pubsub: pubsub, history: history)),
            username: username,
            password: password,
            database: 0,
            tls: try tlsOptions(from: tlsParameters, secure: tls, url: url)
        )
    }

    /// The cluster form of `description`: credentials masked.
    static func clusterDescription(_ endpoint: ClusterEndpoint, auth: String, tls: RedisTLSOptions?) -> String {
        var extra: [String] = []
        if endpoint.pubsub != .both { extra.append("pubsub=\(endpoint.pubsub.rawValue)") }
        if endpoint.history != .perChannel { extra.append("history=\(endpoint.history.rawValue)") }
        let query = describedQuery(tls: tls, extra: extra)
        return "\(tls == nil ? "redis" : "rediss")+cluster://\(auth)\(endpoint)/0\(query)"
    }
}
