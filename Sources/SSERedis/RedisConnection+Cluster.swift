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
    /// `-MOVED` reply on it makes the command client connect again, and so ask again.
    static func connectToCluster(
        _ configuration: RedisConfiguration,
        endpoint: ClusterEndpoint,
        shouldStop: () -> Bool
    ) throws(RedisError) -> RedisConnection {
        let start = nextSeed.wrappingAdd(1, ordering: .relaxed).oldValue
        var failures: [String] = []
        for seed in endpoint.rotated(from: start) {
            if shouldStop() { break }
            var node = configuration
            node.endpoint = .tcp(host: seed.host, port: seed.port)
            do throws(RedisError) {
                let connection = try connect(node)
                guard let slot = endpoint.slot else { return connection }
                return try connectToMaster(of: slot, through: connection, seed: seed, configuration: configuration)
            } catch {
                failures.append("\(seed): \(error.message)")
            }
        }
        throw RedisError(
            .connectionFailed,
            "no cluster node took the connection (\(failures.prefix(4).joined(separator: "; "))\(failures.count > 4 ? "; …" : ""))"
        )
    }

    /// The connection to the master of `slot`, as `seed` (reached by `connection`) sees the
    /// cluster: `connection` itself when the seed is that master.
    private static func connectToMaster(
        of slot: Int,
        through connection: RedisConnection,
        seed: SentinelAddress,
        configuration: RedisConfiguration
    ) throws(RedisError) -> RedisConnection {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(max(1, configuration.commandTimeoutMilliseconds)))
        let reply = try connection.command(["CLUSTER", "SLOTS"], deadline: deadline)
        let topology: ClusterTopology
        switch ClusterTopology.decode(slots: reply, askedHost: seed.host) {
        case .success(let decoded): topology = decoded
        case .failure(let error): throw RedisError(.connectionFailed, error.reason)
        }
        guard let master = topology.master(forSlot: slot) else {
            throw RedisError(.connectionFailed, "no master serves slot \(slot)", serverCode: "CLUSTERDOWN")
        }
        if master == seed { return connection }
        var node = configuration
        node.endpoint = .tcp(host: master.host, port: master.port)
        return try connect(node)
    }
}
