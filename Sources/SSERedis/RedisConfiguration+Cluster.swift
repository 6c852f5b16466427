/// The Redis Cluster URL form: `redis+cluster://[[user]:password@]h1[:6379],h2:7001[/0][?…]`
/// (`rediss+cluster://` over TLS to every node, with redis-py's `ssl_*` parameters), and
/// `?pubsub=both|classic` (see `ClusterEndpoint.PubSub`).
///
/// The user-info authenticates to every node; ports default to 6379, IPv6 goes in brackets. A
/// cluster serves only database 0, so another database is refused, and so is every query
/// parameter but `pubsub` and the TLS ones (over TLS): a misspelt option never passes silently.
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
        for (key, value) in queryPairs(query) {
            switch key {
            case "db":
                if try parseDatabase(value, url: url) != 0 {
                    throw RedisConfigurationError(url: url, reason: "Redis Cluster has only database 0")
                }
            case "pubsub":
                guard let chosen = ClusterEndpoint.PubSub(rawValue: String(value)) else {
                    throw RedisConfigurationError(url: url, reason: "pubsub must be both or classic")
                }
                pubsub = chosen
            default:
                try takeTLSParameter(
                    key, value, into: &tlsParameters, tls: tls, scheme: "rediss+cluster://", otherwise: "a cluster URL takes pubsub= and TLS parameters", url: url
                )
            }
        }
        return RedisConfiguration(
            endpoint: .cluster(ClusterEndpoint(seeds: seeds, pubsub: pubsub)),
            username: username,
            password: password,
            database: 0,
            tls: try tlsOptions(from: tlsParameters, secure: tls, url: url)
        )
    }

    /// The cluster form of `description`: credentials masked.
    static func clusterDescription(_ endpoint: ClusterEndpoint, auth: String, tls: RedisTLSOptions?) -> String {
        let query = describedQuery(tls: tls, extra: endpoint.pubsub == .both ? [] : ["pubsub=\(endpoint.pubsub.rawValue)"])
        return "\(tls == nil ? "redis" : "rediss")+cluster://\(auth)\(endpoint)/0\(query)"
    }
}
