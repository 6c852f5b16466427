/// Finds the current master of a `SentinelEndpoint` and connects to it, on the calling Redis
/// thread (the subscriber's or the command client's; never an event loop).
///
/// Follows redis.io's "Sentinel client spec", after one shortcut: a master the watcher heard
/// announced for this generation is tried first. Then ask each sentinel in turn
/// `SENTINEL get-master-addr-by-name NAME` (a short connect and answer timeout, `AUTH` with
/// the sentinel credentials when set); the first that answers moves to the front of the list;
/// connect to the master it names (the configuration's own credentials, database and
/// timeouts) and check with `ROLE` that it is a master, since a demoted one may still be named
/// for a moment; otherwise go on to the next sentinel. When none gives a master, one
/// `.unavailable` error lists each sentinel's reason, and the caller retries with its backoff.
///
/// Bounded: each sentinel costs at most `sentinelTimeoutMilliseconds` to connect and as much
/// to answer, each master the configuration's connect and command timeouts, once per resolve
/// (a master that failed is not tried again for the next sentinel naming it).
struct SentinelResolver {
    /// The configuration with the `.sentinel` endpoint (credentials, database, timeouts, TLS).
    let configuration: RedisConfiguration
    let endpoint: SentinelEndpoint
    let topology: SentinelTopology

    /// Longest connect to one sentinel, and longest wait for its answer.
    static let sentinelTimeoutMilliseconds = 500
    /// Longest reason given per sentinel in the error.
    static let maximumReasonCharacters = 300
    /// Largest reply accepted from a sentinel.
    static let maximumSentinelReplyBytes = 64 * 1024

    /// Resolves and connects; the connection carries its `Stamp`. Stops with `.shutdown` before
    /// the next attempt once `shouldStop` says so.
    func connect(shouldStop: () -> Bool = { false }) throws(RedisError) -> RedisConnection {
        let generation = topology.generation
        var reasons: [String] = []
        // Masters that failed in this resolve: every sentinel naming a dead master (they all do
        // until they agree it is down) would otherwise cost its connect timeout again.
        var failed: Set<SentinelAddress> = []
        if let announced = topology.announced(in: generation) {
            // Fresher than what a sentinel the leader's hello has not reached yet would name.
            do throws(ResolveFailure) {
                return stamped(try connectMaster(announced), master: announced, generation: generation)
            } catch {
                topology.forgetAnnounced(in: generation)
                failed.insert(announced)
                reasons.append("announced \(error.reason.prefix(Self.maximumReasonCharacters))")
            }
        }
        // A library caller's endpoint may name more than a URL can: the first 16 are asked.
        let sentinels = topology.sentinelsInOrder.prefix(SentinelEndpoint.maximumSentinels)
        for sentinel in sentinels {
            if shouldStop() { throw RedisError(.shutdown, "stopped while asking the sentinels of '\(endpoint.masterName)'") }
            var named: SentinelAddress?
            do throws(ResolveFailure) {
                let master = try askSentinel(sentinel)
                named = master
                topology.promote(sentinel)
                guard !failed.contains(master) else { throw ResolveFailure(reason: "names \(master), already tried in this resolve") }
                return stamped(try connectMaster(master), master: master, generation: generation)
            } catch {
                if let named { failed.insert(named) }
                reasons.append("\(sentinel): \(error.reason.prefix(Self.maximumReasonCharacters))")
            }
        }
        let summary = sentinels.isEmpty ? "no sentinels configured" : reasons.joined(separator: "; ")
        throw RedisError(.unavailable, "no sentinel of '\(endpoint.masterName)' gave a master that answers as one: \(summary)")
    }

    /// Records the master found and stamps its connection with the generation it counts in.
    private func stamped(_ connection: RedisConnection, master: SentinelAddress, generation: UInt64) -> RedisConnection {
        let stamp = topology.resolved(master, in: generation)
        connection.sentinelStamp = SentinelTopology.Stamp(topology: topology, generation: stamp, master: master)
        return connection
    }

    /// Where `sentinel` says the master is.
    private func askSentinel(_ sentinel: SentinelAddress) throws(ResolveFailure) -> SentinelAddress {
        let reply: RedisReply
        do throws(RedisError) {
            let connection = try RedisConnection.connect(Self.sentinelConfiguration(configuration, endpoint: endpoint, sentinel: sentinel))
            reply = try connection.command(
                ["SENTINEL", "get-master-addr-by-name", endpoint.masterName],
                deadline: .now.advanced(by: .milliseconds(Self.sentinelTimeoutMilliseconds))
            )
        } catch {
            throw ResolveFailure(reason: "\(error)")
        }
        switch SentinelReplyDecoder.masterAddress(reply) {
        case .master(let address): return address
        case .unknown: throw ResolveFailure(reason: "does not know a master named '\(endpoint.masterName)'")
        case .invalid(let reason): throw ResolveFailure(reason: reason)
        }
    }

    /// Connects to `master` and checks that it is one.
    private func connectMaster(_ master: SentinelAddress) throws(ResolveFailure) -> RedisConnection {
        var masterConfiguration = configuration
        masterConfiguration.endpoint = .tcp(host: master.host, port: master.port)
        do throws(RedisError) {
            let connection = try RedisConnection.connect(masterConfiguration)
            let reply = try connection.command(
                ["ROLE"],
                deadline: .now.advanced(by: .milliseconds(max(1, configuration.commandTimeoutMilliseconds)))
            )
            // An ACL user may lack ROLE (it is in @admin): then the sentinel's word stands, and a
            // replica is still found by its -READONLY replies.
            if reply.serverError?.serverCode == "NOPERM" { return connection }
            let role = SentinelReplyDecoder.role(reply)
            guard role == "master" else {
                throw RedisError(.connectionFailed, "\(master) answers ROLE \(role ?? "with no role"), not master")
            }
            return connection
        } catch {
            throw ResolveFailure(reason: "master \(master): \(error)")
        }
    }

    /// How to reach `sentinel`: the configuration's transport (TLS included), the sentinel
    /// credentials, database 0, short timeouts and a small reply bound.
    static func sentinelConfiguration(
        _ configuration: RedisConfiguration,
        endpoint: SentinelEndpoint,
        sentinel: SentinelAddress
    ) -> RedisConfiguration {
        var sentinelConfiguration = configuration
        sentinelConfiguration.endpoint = .tcp(host: sentinel.host, port: sentinel.port)
        sentinelConfiguration.username = endpoint.username
        sentinelConfiguration.password = endpoint.password
        sentinelConfiguration.database = 0
        sentinelConfiguration.connectTimeoutMilliseconds = min(max(1, configuration.connectTimeoutMilliseconds), sentinelTimeoutMilliseconds)
        sentinelConfiguration.commandTimeoutMilliseconds = min(max(1, configuration.commandTimeoutMilliseconds), sentinelTimeoutMilliseconds)
        sentinelConfiguration.maximumReplyBytes = maximumSentinelReplyBytes
        return sentinelConfiguration
    }
}

/// Why one sentinel gave no usable master (already printable, secrets never in it).
private struct ResolveFailure: Error {
    let reason: String
}
