import Synchronization

extension RedisConnection {
    /// Where the next cluster connect of this process starts in its seed list, so a process's
    /// connections spread over the seeds.
    private static let nextSeed = Atomic<Int>(0)

    /// Connects to one node of a cluster: each seed in turn (starting at a rotating one) as a
    /// `.tcp` endpoint with the configuration's credentials and TLS, until one takes the
    /// connection. Classic pub/sub and `CLUSTER SLOTS` answer the same on every node, so any
    /// node serves; a dead seed costs one failed attempt. `shouldStop` is asked between seeds.
    ///
    /// With `endpoint.slot` set, the seed is asked `CLUSTER SLOTS` and the connection goes to
    /// the master serving that slot (the seed's own connection when it is that master). A later
    /// `-MOVED` reply about that slot makes the command client connect again, and so ask again.
    static func connectToCluster(
        _ configuration: RedisConfiguration,
        endpoint: ClusterEndpoint,
        shouldStop: () -> Bool
    ) throws(RedisError) -> RedisConnection {
        try throughSeeds(configuration, endpoint: endpoint, shouldStop: shouldStop, failing: "no cluster node took the connection") { node, seed throws(RedisError) in
            let connection = try connect(node)
            guard let slot = endpoint.slot else { return connection }
            return try connectToMaster(of: slot, through: connection, seed: seed, configuration: configuration)
        }
    }

    /// The cluster's topology as the first seed that answers sees it.
    static func fetchClusterTopology(
        _ configuration: RedisConfiguration,
        endpoint: ClusterEndpoint,
        shouldStop: () -> Bool
    ) throws(RedisError) -> ClusterTopology {
        try throughSeeds(configuration, endpoint: endpoint, shouldStop: shouldStop, failing: "no cluster node told the topology") { node, seed throws(RedisError) in
            try connect(node).clusterTopology(askedHost: seed.host, timeoutMilliseconds: configuration.commandTimeoutMilliseconds)
        }
    }

    /// `body` with each seed in turn (as a `.tcp` configuration), from a rotating start, until
    /// one succeeds; `shouldStop` is asked between seeds. Fails with `failing` and the first reasons.
    private static func throughSeeds<Success>(
        _ configuration: RedisConfiguration,
        endpoint: ClusterEndpoint,
        shouldStop: () -> Bool,
        failing: String,
        _ body: (RedisConfiguration, SentinelAddress) throws(RedisError) -> Success
    ) throws(RedisError) -> Success {
        let start = nextSeed.wrappingAdd(1, ordering: .relaxed).oldValue
        var failures: [String] = []
        for seed in endpoint.rotated(from: start) {
            if shouldStop() { break }
            var node = configuration
            node.endpoint = .tcp(host: seed.host, port: seed.port)
            do throws(RedisError) {
                return try body(node, seed)
            } catch {
                failures.append("\(seed): \(error.message)")
            }
        }
        throw RedisError(.connectionFailed, "\(failing) (\(failures.prefix(4).joined(separator: "; "))\(failures.count > 4 ? "; …" : ""))")
    }

    /// The connection to the master of `slot`, as `seed` (reached by `connection`) sees the
    /// cluster: `connection` itself when the seed is that master.
    private static func connectToMaster(
        of slot: Int,
        through connection: RedisConnection,
        seed: SentinelAddress,
        configuration: RedisConfiguration
    ) throws(RedisError) -> RedisConnection {
        let topology = try connection.clusterTopology(askedHost: seed.host, timeoutMilliseconds: configuration.commandTimeoutMilliseconds)
        guard let master = topology.master(forSlot: slot) else {
            throw RedisError(.connectionFailed, "no master serves slot \(slot)", serverCode: "CLUSTERDOWN")
        }
        if master == seed { return connection }
        var node = configuration
        node.endpoint = .tcp(host: master.host, port: master.port)
        return try connect(node)
    }

    /// `CLUSTER SLOTS` on this connection, decoded (`askedHost` is the host it reached).
    func clusterTopology(askedHost: String, timeoutMilliseconds: Int) throws(RedisError) -> ClusterTopology {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(max(1, timeoutMilliseconds)))
        let reply = try command(["CLUSTER", "SLOTS"], deadline: deadline)
        switch ClusterTopology.decode(slots: reply, askedHost: askedHost) {
        case .success(let decoded): return decoded
        case .failure(let error): throw RedisError(.connectionFailed, error.reason)
        }
    }
}
