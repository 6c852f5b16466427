import SSEPublisher
import SSERedis
import SSEServer
import Testing

/// The delivery probe against real parts: a subscription that stays connected (PING answered)
/// but delivers nothing is found within interval + deadline, rebuilt, and caught up from history.
@Suite("Delivery probe: a connected but silent subscription is found and rebuilt", .timeLimit(.minutes(2)))
struct DeliveryProbeTests {
    static let failures = "sse_redis_subscription_probe_failures_total"

    static func event(_ data: String, _ id: String) -> String { "data:\(data)\nid:\(id)\n\n" }

    static func metric(_ name: String, of node: BrokerNode) async throws -> Double {
        let response = try await node.request("GET", "/metrics")
        for line in response.bodyText.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1)) ?? -1
        }
        return 0
    }

    @Test("pushes silenced (PING still answered): probe failure within interval + deadline, /readyz 503 while held, then the missed events once and in order")
    func silencedSubscription() async throws {
        try await withRedis { redis in
            try await withSilencingRelay(to: redis) { relay in
                // Database 1: a connection the relay closes at once fails its SELECT, so a held node is not "connected".
                let viaRelay = try RedisConfiguration(url: "redis://127.0.0.1:\(relay.port)/1")
                // Probe every 300 ms, silent 1.5 s after an unanswered PUBLISH: the five publishes
                // below (on a loaded machine they can take longer than a 300 ms deadline) all happen
                // while the subscription is connected and silent, and the verdict comes within 1.8 s.
                try await withNode(redis: viaRelay, configure: { configuration in
                    configuration.subscriber.probeIntervalMilliseconds = 300
                    configuration.subscriber.probeDeadlineMilliseconds = 1_500
                }) { node in
                    let client = try await node.stream("quiet")
                    try await redis.waitForSubscribers("quiet", count: 1)
                    let publisher = SSEPublisher(redis: try RedisConfiguration(url: redis.url(database: 1)))
                    defer { publisher.shutdown() }
                    var expected = [Self.event("before", try #require(try await publisher.publish(data: "before", channel: "quiet").id))]
                    #expect(try await client.waitForEvents(1) == expected)
                    try await eventually("ready") { try await node.request("GET", "/readyz").status == 200 }
                    #expect(try await Self.metric(Self.failures, of: node) == 0, "no false verdict while delivering")

                    relay.refuseNew(true)
                    relay.silence()
                    let silencedAt = ContinuousClock.now
                    for index in 1...5 {
                        let receipt = try await publisher.publish(data: .string("silent \(index)"), channel: "quiet")
                        #expect(receipt.receivers == 1, "Redis still counts the node's subscription")
                        expected.append(Self.event("silent \(index)", try #require(receipt.id)))
                    }
                    try await eventually(timeout: .seconds(10), "the probe failure") { try await Self.metric(Self.failures, of: node) >= 1 }
                    let detection = silencedAt.duration(to: .now)
                    // interval + deadline is 1.8 s (measured 1.77 s on an idle machine); the bound
                    // leaves room for the five publishes and the metric's polling under the full
                    // suite's load (5.3 s seen once), while a probe that never fires still fails.
                    #expect(detection < .seconds(8), "found silent after \(detection) (interval + deadline: 1.8 s)")

                    // Held away from Redis: out of the load balancer, with the reason.
                    try await Task.sleep(for: .milliseconds(300))
                    let held = try await node.request("GET", "/readyz")
                    #expect(held.status == 503)
                    #expect(held.bodyText.contains("redis subscription not delivering"))
                    #expect(relay.connectionCounts.refused >= 1, "the node tried to rebuild its subscription")
                    #expect(try client.events() == Array(expected.prefix(1)), "nothing got past the silenced relay")

                    relay.silence(false)
                    relay.refuseNew(false)
                    let releasedAt = ContinuousClock.now
                    #expect(try await client.waitForEvents(6) == expected)
                    try await eventually("ready again") { try await node.request("GET", "/readyz").status == 200 }
                    let recovery = releasedAt.duration(to: .now)
                    let after = try await publisher.publish(data: "after", channel: "quiet")
                    expected.append(Self.event("after", try #require(after.id)))
                    #expect(try await client.waitForEvents(7) == expected)
                    try await Task.sleep(for: .milliseconds(300))
                    #expect(try client.events() == expected, "each event once")
                    #expect(relay.droppedMessages >= 5)
                    print("delivery probe: silent found after \(detection), ready and caught up \(recovery) after release")
                    await client.close()
                }
            }
        }
    }

    @Test("split brain: the node publishes to another server than the one it subscribes to (PUBLISH answers 0): silent at once, resubscribed there")
    func zeroReceivers() async throws {
        try await withRedis { first in
            try await withRedis { second in
                try await withSilencingRelay(to: first) { relay in
                    let viaRelay = try RedisConfiguration(url: "redis://127.0.0.1:\(relay.port)/0")
                    try await withNode(redis: viaRelay, configure: { configuration in
                        // Long deadline: only the 0-receivers rule can find this within the test's bound.
                        configuration.subscriber.probeIntervalMilliseconds = 300
                        configuration.subscriber.probeDeadlineMilliseconds = 60_000
                    }) { node in
                        let client = try await node.stream("moved")
                        try await first.waitForSubscribers("moved", count: 1)
                        // The probe's own connection must be up to the first server before the switch
                        // (on a loaded machine its first PUBLISH may come late): two probes answered there.
                        try await eventually(timeout: .seconds(10), "the probe publishing to the first server") {
                            guard case .bulkString(let info) = try await first.command("INFO", "commandstats") else { return false }
                            let line = String(decoding: info, as: UTF8.self).split(whereSeparator: \.isNewline).first { $0.hasPrefix("cmdstat_publish:") }
                            guard let calls = line?.split(separator: "=").dropFirst().first?.split(separator: ",").first else { return false }
                            return (Int(calls) ?? 0) >= 2
                        }
                        // New connections go to the second server; the node's command connections
                        // (not its subscription) are cut, so they reconnect there, as after a failover.
                        relay.retarget(redisPort: second.port)
                        let switchedAt = ContinuousClock.now
                        _ = try await first.command("CLIENT", "KILL", "TYPE", "normal")
                        try await eventually(timeout: .seconds(5), "the probe failure") { try await Self.metric(Self.failures, of: node) >= 1 }
                        let detection = switchedAt.duration(to: .now)
                        // Far below the 60 s deadline: the 0-receivers rule found it (not a timing bound).
                        #expect(detection < .seconds(20), "found after \(detection)")
                        try await second.waitForSubscribers("moved", count: 1)
                        #expect(try await first.subscriberCount("moved") == 0)
                        let publisher = SSEPublisher(redis: try second.configuration)
                        defer { publisher.shutdown() }
                        let receipt = try await publisher.publish(data: "on the second", channel: "moved")
                        #expect(try await client.waitForEvents(1) == [Self.event("on the second", try #require(receipt.id))])
                        try await eventually("ready") { try await node.request("GET", "/readyz").status == 200 }
                        print("delivery probe: 0 receivers found after \(detection)")
                        await client.close()
                    }
                }
            }
        }
    }

    @Test("the probe channel joins the node's subscription; streams and publishes on its prefix are refused")
    func probeChannelIsReserved() async throws {
        try await withRedis { redis in
            try await withNode(redis: try redis.configuration, configure: { $0.nodeName = "node-7" }) { node in
                guard case .array(let channels) = try await redis.command("PUBSUB", "CHANNELS", "sse-broker:probe:*") else {
                    throw TestFailure("no PUBSUB CHANNELS reply")
                }
                #expect(channels.count == 1)
                let name = try #require(channels.first?.string)
                // sse-broker:probe:<node name>:<16 random hex>
                let suffix = try #require(name.split(separator: ":").last)
                #expect(name.hasPrefix("sse-broker:probe:node-7:"))
                #expect(suffix.count == 16 && suffix.allSatisfy(\.isHexDigit))
                let stream = try await node.request("GET", "/stream?channel=\(name)")
                #expect(stream.status == 400)
                let publish = try await node.request("POST", "/publish?channel=\(name)", body: Array(#"{"data": "x"}"#.utf8))
                #expect(publish.status == 400)
            }
        }
    }
}
