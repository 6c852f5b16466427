import Foundation
import Logging
import SSERedis
import SSEServer
import SSEWire
import Testing

/// `rediss+cluster://` with real parts: a 3-master Redis Cluster whose every node listens only on
/// TLS (plain port off; cluster bus and replication over TLS too) and asks for a password, the
/// real broker nodes, certificates made by `openssl`.
@Suite("Redis Cluster over TLS, with a password", .serialized, .timeLimit(.minutes(3)))
struct ClusterTLSTests {
    /// A password with characters a URL's user-info must percent-encode (`@`, `:`, `/`), so `url` is tested doing it.
    static let password = "p@ss:w/rd"

    static func withTLSCluster<Result>(_ body: (RedisClusterProcess) async throws -> Result) async throws -> Result {
        try await withRedisCluster(masters: 3, password: password, tls: try TLSTestCertificates.shared(), body)
    }

    /// `SPUBLISH` of a Flask-SSE payload on the master serving `channel` (over TLS, with the
    /// password); its receivers there.
    static func spublish(_ cluster: RedisClusterProcess, _ channel: String, _ data: String) async throws -> Int {
        let master = try await cluster.masterPort(forSlot: ClusterSlot.slot(of: channel))
        let payload = FlaskSSEMessage(data: .string(data)).redisPayload
        let reply = try await cluster.command(port: master, bytes: [Array("SPUBLISH".utf8), Array(channel.utf8), payload])
        guard let receivers = reply.int else { throw TestFailure("SPUBLISH answered \(reply)") }
        return receivers
    }

    /// Classic `PUBLISH` of a Flask-SSE payload on a node that serves none of `channel`'s slot
    /// (Redis Cluster forwards it over the TLS bus).
    static func publishElsewhere(_ cluster: RedisClusterProcess, _ channel: String, _ data: String) async throws {
        let owner = try await cluster.masterPort(forSlot: ClusterSlot.slot(of: channel))
        guard let other = cluster.ports.first(where: { $0 != owner }) else { throw TestFailure("no other node") }
        let payload = FlaskSSEMessage(data: .string(data)).redisPayload
        let reply = try await cluster.command(port: other, bytes: [Array("PUBLISH".utf8), Array(channel.utf8), payload])
        guard reply.int != nil else { throw TestFailure("PUBLISH answered \(reply)") }
    }

    /// Waits until no node holds a classic or sharded subscription of any of `channels`.
    ///
    /// (A helper, not an `eventually` inline in a test's cluster closure: that crashes Swift
    /// 6.3.1's SendNonSendable pass.)
    static func waitUntilUnsubscribed(_ cluster: RedisClusterProcess, _ channels: [String]) async throws {
        try await eventually(timeout: .seconds(15), "no subscriber of \(channels)") {
            for channel in channels {
                guard try await ClusterModeTests.subscribers(cluster, channel) == 0 else { return false }
                let master = try await cluster.masterPort(forSlot: ClusterSlot.slot(of: channel))
                guard try await ShardedPubSubTests.shardSubscribers(cluster, channel, port: master) == 0 else { return false }
            }
            return true
        }
    }

    /// Starts a broker node on `redis` (as `BrokerNode` does, probe off) that is expected never
    /// to get its subscription up, and checks for `window` that it does not: the subscription
    /// stays down, `/readyz` answers 503, `POST /publish` 503, and no cluster node has a
    /// subscriber of `channel`, whose stream on it gets no event of a `PUBLISH` meanwhile.
    static func expectNeverConnects(
        _ redis: RedisConfiguration, cluster: RedisClusterProcess, channel: String, window: Duration = .seconds(3),
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        var configuration = BrokerConfiguration(host: "127.0.0.1", port: 0, redis: redis, threads: 2, heartbeatSeconds: 0)
        configuration.subscriber = .init(backoffBaseMilliseconds: 50, backoffCapMilliseconds: 500, pingIntervalMilliseconds: 1000)
        configuration.subscriber.probeIntervalMilliseconds = 0
        var logger = Logger(label: "test.cluster-tls.broker")
        logger.logLevel = .critical
        let server = try await BrokerServer(configuration: configuration, logger: logger)
        try await server.start()
        try await ensuring({
            let port = try #require(server.localPort, sourceLocation: sourceLocation)
            let stream = try await StreamClient.open(port: port, "/stream?channel=\(channel)", waitForHead: false)
            defer { Task { await stream.close() } }
            let deadline = ContinuousClock.now + window
            try await publishElsewhere(cluster, channel, "never delivered")
            while ContinuousClock.now < deadline, !server.isSubscriptionConnected {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(!server.isSubscriptionConnected, "the subscription came up", sourceLocation: sourceLocation)
            try await publishElsewhere(cluster, channel, "never delivered either")
            let ready = try await sendRequest(port: port, "GET", "/readyz")
            #expect(ready.status == 503, "\(ready.bodyText)", sourceLocation: sourceLocation)
            let publish = try await sendRequest(port: port, "POST", "/publish?channel=\(channel)", body: Array(#"{"data": "refused"}"#.utf8))
            #expect(publish.status == 503, "\(publish.bodyText)", sourceLocation: sourceLocation)
            #expect(try await ClusterModeTests.subscribers(cluster, channel) == 0, sourceLocation: sourceLocation)
            for port in cluster.ports {
                let sharded = try await cluster.command(port: port, "PUBSUB", "SHARDNUMSUB", channel)
                #expect(sharded.elements?.last?.int == 0, "port \(port): \(sharded)", sourceLocation: sourceLocation)
            }
            let events = try stream.events()
            let head = try HTTPResponse.parse(stream.connection.received).map { "\($0.status)" } ?? "no head"
            #expect(events.isEmpty, "stream (\(head)) got \(events)", sourceLocation: sourceLocation)
        }, finally: { await server.shutdown() })
    }

    @Test("two nodes on a TLS-only 3-master cluster with a password: single- and multi-channel streams over all three shards get POST /publish (history on), classic PUBLISH and SPUBLISH once, in order; the multi-channel stream resumes on the other node with Last-Event-ID and gets exactly what it missed")
    func deliveryAndResume() async throws {
        try await Self.withTLSCluster { cluster in
            let certificates = try TLSTestCertificates.shared()
            let seeds = cluster.seedPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
            #expect(cluster.url == "rediss+cluster://:p%40ss%3Aw%2Frd@\(seeds)?ssl_ca_certs=\(certificates.caCertificate)")
            let parsed = try RedisConfiguration(url: cluster.url)
            #expect(parsed.password == Self.password)
            #expect(parsed.tls?.caCertificatesFile == certificates.caCertificate)
            #expect(parsed.tls?.verification == .full)
            // TLS-only nodes: no plain port; the cluster bus and replication are TLS too.
            for port in cluster.ports {
                #expect(try await cluster.command(port: port, "CONFIG", "GET", "port").elements?.last?.string == "0")
                #expect(try await cluster.command(port: port, "CONFIG", "GET", "tls-port").elements?.last?.string == String(port))
                #expect(try await cluster.command(port: port, "CONFIG", "GET", "tls-cluster").elements?.last?.string == "yes")
            }

            let channels = try await ClusterModeTests.channelsOnDistinctShards(cluster, count: 3, prefix: "tls")
            let nodeA = try await ClusterModeTests.node(cluster)
            let nodeB = try await ClusterModeTests.node(cluster)
            defer { Task { await nodeA.shutdown(); await nodeB.shutdown() } }
            let single = try await nodeA.stream(channels[0])
            let multiTarget = "/stream?" + channels.map { "channel=\($0)" }.joined(separator: "&")
            let multi = try await StreamClient.open(port: nodeB.port, multiTarget)
            for channel in channels {
                let count = channel == channels[0] ? 2 : 1
                try await ClusterModeTests.waitForSubscribers(cluster, channel, count: count)
                try await ShardedPubSubTests.waitForShardSubscribers(cluster, channel, count: count)
            }

            // Each kind on each channel, waited for in turn: classic and sharded messages travel
            // different connections, so only their order within one connection is given.
            var expectedMulti: [String] = []
            var expectedSingle: [String] = []
            var lastHistoryID = ""
            for (index, channel) in channels.enumerated() {
                let id = try await HistoryTests.publish(index % 2 == 0 ? nodeA : nodeB, channel, "post\(index)")
                lastHistoryID = id
                let sent = [ClusterModeTests.event("post\(index)", id), "data:classic\(index)\n\n", "data:sharded\(index)\n\n"]
                expectedMulti.append(sent[0])
                #expect(try await multi.waitForEvents(expectedMulti.count) == expectedMulti)
                try await Self.publishElsewhere(cluster, channel, "classic\(index)")
                expectedMulti.append(sent[1])
                #expect(try await multi.waitForEvents(expectedMulti.count) == expectedMulti)
                #expect(try await Self.spublish(cluster, channel, "sharded\(index)") == (index == 0 ? 2 : 1))
                expectedMulti.append(sent[2])
                #expect(try await multi.waitForEvents(expectedMulti.count) == expectedMulti)
                if index == 0 { expectedSingle = sent }
            }
            // On node A nothing waited between the kinds: the classic events keep their order,
            // the sharded one (another connection) may come anywhere.
            let gotSingle = try await single.waitForEvents(expectedSingle.count)
            #expect(gotSingle.filter { !$0.hasPrefix("data:sharded") } == expectedSingle.filter { !$0.hasPrefix("data:sharded") })
            #expect(Set(gotSingle) == Set(expectedSingle))
            try await Task.sleep(for: .milliseconds(300))
            #expect(try multi.events() == expectedMulti, "nothing twice")
            #expect(try single.events().count == expectedSingle.count, "nothing twice")

            // The multi-channel stream goes away, misses one history event per channel (published
            // on either node), and resumes on the other node from the last id it got.
            await multi.close()
            // (nodeB lets go of the channels only it wanted, so the sharded count below is nodeA's.)
            try await Self.waitUntilUnsubscribed(cluster, Array(channels.dropFirst()))
            var missed: [String] = []
            for (index, channel) in channels.enumerated() {
                let id = try await HistoryTests.publish(index % 2 == 0 ? nodeB : nodeA, channel, "missed\(index)")
                missed.append(ClusterModeTests.event("missed\(index)", id))
            }
            let resumed = try await StreamClient.open(port: nodeA.port, multiTarget, headers: ["Last-Event-ID": lastHistoryID])
            #expect(try await resumed.waitForEvents(missed.count) == missed)
            // Live again after the replay, on all three shards' channels.
            try await ShardedPubSubTests.waitForShardSubscribers(cluster, channels[2], count: 1)
            #expect(try await Self.spublish(cluster, channels[2], "live") == 1)
            let live = try await HistoryTests.publish(nodeB, channels[1], "live")
            let after = missed + ["data:live\n\n", ClusterModeTests.event("live", live)]
            #expect(try await resumed.waitForEvents(after.count) == after)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try resumed.events() == after, "nothing twice")
            #expect(try single.events().count == expectedSingle.count + 1, "the single stream got its missed event too")
            await single.close()
            await resumed.close()
        }
    }

    @Test("a wrong password is sent and refused (WRONGPASS; NOAUTH without one), and a plain redis+cluster:// URL reaches no TLS-only node: neither broker connects, is ready, publishes, or delivers")
    func wrongPasswordAndPlainURL() async throws {
        try await Self.withTLSCluster { cluster in
            let right = try RedisConfiguration(url: cluster.url)
            #expect(await RedisTLSTests.commandError(right) == nil, "the right URL is answered")

            var wrong = right
            wrong.password = "not the password"
            let wrongError = try #require(await RedisTLSTests.commandError(wrong), "a wrong password was accepted")
            #expect(wrongError.message.contains("WRONGPASS"), "\(wrongError)")
            var none = right
            none.password = nil
            let noneError = try #require(await RedisTLSTests.commandError(none), "no password was accepted")
            #expect(noneError.message.contains("NOAUTH"), "\(noneError)")
            try await Self.expectNeverConnects(wrong, cluster: cluster, channel: "wrongpass")

            let plainURL = cluster.url.replacingOccurrences(of: "rediss+cluster://", with: "redis+cluster://")
                .components(separatedBy: "?")[0]
            let plain = try RedisConfiguration(url: plainURL)
            #expect(plain.tls == nil && plain.password == Self.password)
            let plainError = try #require(await RedisTLSTests.commandError(plain), "a plain connection to a TLS-only node was answered")
            // Every seed tried, none answered as Redis would (no AUTH reply, not even an error).
            for port in cluster.seedPorts { #expect(plainError.message.contains("127.0.0.1:\(port):"), "\(plainError)") }
            #expect(!plainError.message.contains("AUTH"), "\(plainError)")
            try await Self.expectNeverConnects(plain, cluster: cluster, channel: "plaintext")

            // The cluster itself is unharmed: a right node still connects and delivers.
            let node = try await ClusterModeTests.node(cluster)
            defer { Task { await node.shutdown() } }
            let client = try await node.stream("afterwards")
            try await ClusterModeTests.waitForSubscribers(cluster, "afterwards", count: 1)
            let id = try await HistoryTests.publish(node, "afterwards", "fine")
            #expect(try await client.waitForEvents(1) == [ClusterModeTests.event("fine", id)])
            await client.close()
        }
    }
}
