import Foundation
import SSEPublisher
import SSERedis
import SSEWire
import Synchronization
import Testing

/// Redis behind Sentinel (`redis+sentinel://`): resolving the master, and two nodes following
/// failovers with real sentinels, a master and two replicas.
@Suite("Redis Sentinel", .timeLimit(.minutes(3)))
struct SentinelTests {
    /// Delivery (both nodes subscribed on the new master, their publishes landing there, every
    /// client receiving them) resumes within this long after the sentinels name the new master.
    /// The README states 2 s (measured 0.07-0.19 s on an idle machine); this allows for `make test`
    /// running six tests at once on two cores (2.7 s seen, the test's own checks included), and
    /// still fails without the watcher (the nodes then stay on the old master for about 10 s).
    static let failoverBound = Duration.seconds(5)

    @Test("a sentinel that is down, one that does not know the master and one that names a replica are passed over; with no good one the error gives each reason")
    func resolver() async throws {
        try await withRedis { master in
            try await withRedis(arguments: ["--replicaof", "127.0.0.1", String(master.port)]) { replica in
                let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sse-sentinel-\(UUID().uuidString.prefix(8))")
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: directory) }
                let down = try FreePort.next()
                let unknown = try SentinelProcess(port: try FreePort.next(), id: Self.randomID(), directory: directory, lines: [
                    "requirepass secret1",
                    "sentinel monitor othermaster 127.0.0.1 \(master.port) 1",
                ])
                let wrong = try SentinelProcess(port: try FreePort.next(), id: Self.randomID(), directory: directory, lines: [
                    "requirepass secret1",
                    "sentinel monitor mymaster 127.0.0.1 \(replica.port) 1",
                ])
                let good = try SentinelProcess(port: try FreePort.next(), id: Self.randomID(), directory: directory, lines: [
                    "requirepass secret1",
                    "sentinel monitor mymaster 127.0.0.1 \(master.port) 1",
                ])
                for sentinel in [unknown, wrong, good] { try await sentinel.waitUntilListening() }

                let through = try RedisConfiguration(url: "redis+sentinel://127.0.0.1:\(down),\(unknown.address),\(wrong.address),\(good.address)/mymaster?sentinel_password=secret1")
                let client = RedisCommandClient(redis: through, logger: .init(label: "test.sentinel"))
                defer { client.shutdown() }
                #expect(try await client.send("SET", "resolved", "yes") == .status("OK"))
                #expect(try await master.command("GET", "resolved").string == "yes")

                let noGood = try RedisConfiguration(url: "redis+sentinel://127.0.0.1:\(down),\(unknown.address),\(wrong.address)/mymaster?sentinel_password=secret1")
                let failing = RedisCommandClient(redis: noGood, logger: .init(label: "test.sentinel"))
                defer { failing.shutdown() }
                do throws(RedisError) {
                    _ = try await failing.send("PING")
                    Issue.record("resolved a master without a good sentinel")
                } catch {
                    #expect(error.code == .unavailable)
                    #expect(error.message.contains("127.0.0.1:\(down): "), "\(error)")
                    #expect(error.message.contains("\(unknown.address): does not know a master named 'mymaster'"), "\(error)")
                    #expect(error.message.contains("\(wrong.address): master 127.0.0.1:\(replica.port): "), "\(error)")
                    #expect(error.message.contains("answers ROLE slave, not master"), "\(error)")
                    #expect(!error.message.contains("secret1"))
                }
            }
        }
    }

    @Test("sse-broker with a redis+sentinel:// URL and --redis-sentinel-password (env SSE_REDIS_SENTINEL_PASSWORD) subscribes through the sentinel; the flag without a Sentinel URL is refused")
    func executable() async throws {
        try await withRedis { master in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sse-sentinel-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let sentinel = try SentinelProcess(port: try FreePort.next(), id: Self.randomID(), directory: directory, lines: [
                "requirepass s3ntinel",
                "sentinel monitor mymaster 127.0.0.1 \(master.port) 1",
            ])
            try await sentinel.waitUntilListening()
            let url = "redis+sentinel://\(sentinel.address)/mymaster"
            for (arguments, environment) in [(["--redis-sentinel-password", "s3ntinel"], [:]), ([], ["SSE_REDIS_SENTINEL_PASSWORD": "s3ntinel"])] {
                let broker = try await BrokerProcess(redisURL: url, arguments: arguments, environment: environment)
                let client = try await StreamClient.open(port: broker.port, "/stream?channel=via")
                try await master.waitForSubscribers("via", count: 1)
                let publish = try await sendRequest(port: broker.port, "POST", "/publish?channel=via", body: Array(#"{"data": "through sentinel"}"#.utf8))
                #expect(publish.status == 200, "\(publish.bodyText)")
                #expect(try await client.waitForEvents(1).first?.hasPrefix("data:through sentinel\n") == true)
                await client.close()
                #expect(try await broker.stop() == 0)
                #expect(!broker.child.text.contains("s3ntinel"))
            }
            let refused = try ChildProcess(try Executables.broker(), ["--redis-url", master.url(), "--redis-sentinel-password", "x", "--port", "0"])
            #expect(try await refused.waitForExit() != 0)
            #expect(refused.text.contains("needs a redis+sentinel:// URL"))
        }
    }

    @Test("a publish that meets -READONLY (a demoted master) did not run: it is retried on a fresh connection and lands once, when the server is master again")
    func readOnlyIsRetried() async throws {
        try await withRedis { server in
            try await withRedis { other in
                let publisher = SSEPublisher(redis: try server.configuration)
                defer { publisher.shutdown() }
                _ = try await publisher.publish(data: "before", channel: "ro")
                let connectionsBefore = try await Self.connectionsReceived(server)
                _ = try await server.command("REPLICAOF", "127.0.0.1", String(other.port))
                let retried = Task { try await publisher.publish(data: "during", channel: "ro") }
                try await Task.sleep(for: .milliseconds(400))
                _ = try await server.command("REPLICAOF", "NO", "ONE")
                let receipt = try await retried.value
                #expect(receipt.id != nil)
                // The retried event is in the history once (whether or not the demotion's sync had
                // replaced the server's data meanwhile).
                guard case .array(let entries) = try await server.command("XRANGE", "sse:history:stream:ro", "-", "+") else {
                    throw TestFailure("no history stream")
                }
                let payloads = entries.compactMap { $0.elements?.last?.elements?.compactMap(\.string).joined(separator: " ") }
                #expect(payloads.filter { $0.contains("during") }.count == 1, "\(payloads)")
                // At least one reconnect after -READONLY, besides the 4 connections of this test's own commands.
                #expect(try await Self.connectionsReceived(server) >= connectionsBefore + 5)
            }
        }
    }

    @Test("sentinels that all name one silent master cost it once per resolve, not once per sentinel")
    func deadMasterTriedOnce() async throws {
        try await withRedis { master in try await Self.withDirectory { directory in
            let sentinels = try (0..<3).map { _ in
                try SentinelProcess(port: try FreePort.next(), id: Self.randomID(), directory: directory, lines: [
                    "sentinel monitor mymaster 127.0.0.1 \(master.port) 1",
                ])
            }
            for sentinel in sentinels { try await sentinel.waitUntilListening() }
            // Stopped, the master accepts connections (the kernel does) but answers nothing.
            kill(master.pid, SIGSTOP)
            defer { kill(master.pid, SIGCONT) }
            var configuration = try RedisConfiguration(url: "redis+sentinel://\(sentinels.map(\.address).joined(separator: ","))/mymaster")
            configuration.commandTimeoutMilliseconds = 300
            let client = RedisCommandClient(redis: configuration, logger: .init(label: "test.sentinel"))
            defer { client.shutdown() }
            let start = ContinuousClock.now
            do throws(RedisError) {
                _ = try await client.send("PING")
                Issue.record("a stopped master answered")
            } catch {
                let elapsed = start.duration(to: .now)
                #expect(error.code == .unavailable, "\(error)")
                #expect(error.message.components(separatedBy: "master 127.0.0.1:\(master.port): ").count - 1 == 1, "\(error)")
                #expect(error.message.components(separatedBy: "already tried in this resolve").count - 1 == 2, "\(error)")
                print("three sentinels naming one silent master (ROLE timeout 300 ms): resolve failed after \(elapsed)")
            }
        } }
    }

    @Test("a shutdown while resolving through silent sentinels ends after the attempt in progress, not after every sentinel (subscriber and command client)")
    func shutdownDuringResolve() async throws {
        try await withRedis { silent in
            // Stopped, it accepts connections (the kernel does) but never answers: each of the
            // 16 "sentinels" costs its 500 ms answer timeout, 8 s for a whole resolve.
            kill(silent.pid, SIGSTOP)
            defer { kill(silent.pid, SIGCONT) }
            let url = "redis+sentinel://" + Array(repeating: "127.0.0.1:\(silent.port)", count: 16).joined(separator: ",") + "/mymaster"
            let configuration = try RedisConfiguration(url: url)
            let subscriber = try RedisSubscriber(redis: configuration, configuration: .init(probeIntervalMilliseconds: 0), logger: .init(label: "test.sentinel"))
            subscriber.start(delegate: RecordingSubscriberDelegate())
            let client = RedisCommandClient(redis: configuration, logger: .init(label: "test.sentinel"))
            let pending = Task { try? await client.send("PING") }
            try await Task.sleep(for: .milliseconds(700))
            let start = ContinuousClock.now
            await subscriber.shutdown()
            let subscriberTook = start.duration(to: .now)
            client.shutdown()
            _ = await pending.value
            let clientTook = start.duration(to: .now)
            print("shutdown during a resolve through 16 silent sentinels: subscriber \(subscriberTook), command client \(clientTook)")
            #expect(subscriberTook < .seconds(2), "the subscriber went on asking the sentinels")
            #expect(clientTook < .seconds(2), "the command client went on asking the sentinels")
        }
    }

    @Test("-NOREPLICAS (a master whose replicas lag) sends only the command connection back to the sentinels: the process's subscriptions through them stay")
    func noReplicasKeepsSubscriptions() async throws {
        try await withRedis(arguments: ["--min-replicas-to-write", "1"]) { master in try await Self.withDirectory { directory in
            let sentinel = try SentinelProcess(port: try FreePort.next(), id: Self.randomID(), directory: directory, lines: [
                "sentinel monitor mymaster 127.0.0.1 \(master.port) 1",
            ])
            try await sentinel.waitUntilListening()
            let configuration = try RedisConfiguration(url: "redis+sentinel://\(sentinel.address)/mymaster")
            let subscriber = try RedisSubscriber(redis: configuration, configuration: .init(probeIntervalMilliseconds: 0), logger: .init(label: "test.sentinel"))
            let delegate = RecordingSubscriberDelegate()
            subscriber.subscribe("nr")
            subscriber.start(delegate: delegate)
            defer { subscriber.shutdown() }
            #expect(try await answered(subscriber, ["nr"]).isEmpty)
            let client = RedisCommandClient(redis: configuration, logger: .init(label: "test.sentinel"))
            defer { client.shutdown() }
            for _ in 0..<10 {
                #expect(try await client.send("SET", "nr", "x").serverError?.serverCode == "NOREPLICAS")
            }
            // Still the first subscription: the same connection delivers.
            _ = try await master.command("PUBLISH", "nr", "still")
            try await eventually("the subscription delivers") { delegate.payloads(on: "nr") == ["still"] }
            let (connects, disconnects) = delegate.state.withLock { ($0.connects, $0.disconnects.count) }
            #expect(connects == 1 && disconnects == 0, "\(connects) connects, \(disconnects) disconnects")
        } }
    }

    /// A fresh directory for sentinel configuration files, removed after `body`.
    static func withDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sse-sentinel-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try await body(directory)
    }

    /// `total_connections_received` of `INFO stats` (this read's own connection included).
    static func connectionsReceived(_ server: RedisServerProcess) async throws -> Int {
        guard case .bulkString(let bytes) = try await server.command("INFO", "stats"),
            let line = String(decoding: bytes, as: UTF8.self).split(separator: "\r\n").first(where: { $0.hasPrefix("total_connections_received:") }),
            let count = Int(line.dropFirst("total_connections_received:".count))
        else { throw TestFailure("no total_connections_received in INFO stats") }
        return count
    }

    static func randomID() -> String {
        (0..<40).map { _ in String("0123456789abcdef".randomElement() ?? "0") }.joined()
    }

    @Test("two nodes follow SENTINEL FAILOVER, then, with the sentinel they listened on gone, a killed master: every acknowledged event reaches every client once and in order, or a history-gap says what is missing; readyz returns to 200")
    func failover() async throws {
        try await withSentinelCluster { cluster in
            try await cluster.waitUntilSettled()
            try await withNodes(2, redis: try cluster.configuration, configure: { $0.heartbeatSeconds = 0.5 }) { nodes in
                try await Self.failover(cluster, nodes)
            }
        }
    }

    /// A stream a test client holds: on which node, which channels.
    struct Watched {
        let node: Int
        let channels: Set<String>
        let client: StreamClient
    }

    private static func failover(_ cluster: SentinelCluster, _ nodes: [BrokerNode]) async throws {
        let plan: [(node: Int, channels: [String])] = [(0, ["ch1"]), (0, ["ch1", "ch2"]), (1, ["ch2"]), (1, ["ch1", "ch2"])]
        var watched: [Watched] = []
        for (node, channels) in plan {
            let client = try await nodes[node].stream(channels.joined(separator: "&channel="))
            watched.append(Watched(node: node, channels: Set(channels), client: client))
        }
        let first = try await cluster.currentMaster()
        try await first.waitForSubscribers("ch1", count: 2)
        try await first.waitForSubscribers("ch2", count: 2)

        let log = PublishLog()
        let publishers = nodes.enumerated().map { index, node in
            Task { await Self.publishUntilCancelled(node, index: index, log: log) }
        }
        let readiness = ReadinessLog()
        let readyPoller = Task { await Self.pollReadiness(nodes, log: readiness) }
        defer {
            for publisher in publishers { publisher.cancel() }
            readyPoller.cancel()
        }
        try await Task.sleep(for: .milliseconds(600))

        // 1. A planned failover: the old master stays `ROLE master` for about 10 s afterwards.
        let planned = try await Self.measure("SENTINEL FAILOVER", cluster, watched, log) {
            _ = try await cluster.sentinels[0].command("SENTINEL", "FAILOVER", SentinelCluster.masterName)
        }
        try await Task.sleep(for: .milliseconds(800))
        // The sentinel the watchers listen on (the first that answered) dies: they move on to the next.
        cluster.sentinels[0].stop()
        try await Task.sleep(for: .milliseconds(300))
        // 2. The new master dies (SIGKILL); the first dials hit the dead address for about 2 s.
        let killedMaster = try await cluster.currentMaster()
        let killed = try await Self.measure("kill -9 of the master", cluster, watched, log) {
            killedMaster.kill()
        }
        try await Task.sleep(for: .milliseconds(800))
        for publisher in publishers { publisher.cancel() }
        for publisher in publishers { await publisher.value }

        let windows = [planned, killed]
        for measured in windows {
            #expect(measured.moved <= Self.failoverBound, "\(measured.name): moved after \(measured.moved)")
        }
        #expect(readiness.sawDown(between: killed.triggeredAt, and: killed.movedAt), "readyz was never 503 while the killed master's subscription was down")
        for node in nodes {
            try await eventually("readyz 200 after the failovers") { try await node.request("GET", "/readyz").status == 200 }
        }
        let acks = log.acks
        #expect(acks.count > 40, "publishes acknowledged: \(acks.count)")
        // Let the streams get what they will of what was acknowledged (a missing event must come
        // with a notice, checked below, so this wait may end without all of them).
        try? await eventually(timeout: .seconds(2), "the streams to catch up") {
            try watched.allSatisfy { stream in
                let received = Set(try Self.received(stream.client).payloads)
                return acks.allSatisfy { !stream.channels.contains($0.channel) || received.contains($0.payload) }
            }
        }
        for (index, stream) in watched.enumerated() {
            let expected = acks.filter { stream.channels.contains($0.channel) }
            let (payloads, gaps) = try Self.received(stream.client)
            #expect(Set(payloads).count == payloads.count, "stream \(index) got an event twice")
            for node in nodes.indices {
                let numbers = payloads.compactMap { PublishLog.number(of: $0, node: node) }
                #expect(numbers == numbers.sorted(), "stream \(index): node \(node)'s events out of order")
            }
            let missing = expected.filter { !payloads.contains($0.payload) }
            let outsideWindows = missing.filter { ack in !windows.contains { $0.overlaps(ack) } }
            #expect(outsideWindows.isEmpty, "stream \(index) misses events acknowledged outside a failover: \(outsideWindows.map(\.payload))")
            if !missing.isEmpty {
                #expect(gaps > 0, "stream \(index) misses \(missing.map(\.payload)) without a history-gap notice")
            }
            print("sentinel failover: stream \(index) got \(payloads.count) events, \(missing.count) acknowledged ones missing, \(gaps) history-gap notices")
        }
        for stream in watched { await stream.client.close() }
    }

    /// What one failover cost.
    struct Measured {
        let name: String
        let triggeredAt: ContinuousClock.Instant
        /// When a sentinel first named the new master.
        let switchedAt: ContinuousClock.Instant
        /// When both nodes were subscribed and publishing there and every client had an event
        /// published after the switch.
        let movedAt: ContinuousClock.Instant
        var moved: Duration { switchedAt.duration(to: movedAt) }

        /// Whether a publish ran while the topology was moving.
        func overlaps(_ ack: PublishLog.Ack) -> Bool {
            ack.sentAt <= movedAt && ack.ackedAt >= triggeredAt
        }
    }

    private static func measure(
        _ name: String,
        _ cluster: SentinelCluster,
        _ watched: [Watched],
        _ log: PublishLog,
        trigger: () async throws -> Void
    ) async throws -> Measured {
        let old = try await cluster.currentMaster()
        let triggeredAt = ContinuousClock.now
        try await trigger()
        var newPort: Int?
        try await eventually(timeout: .seconds(15), "\(name): a sentinel to name a new master") {
            for sentinel in cluster.sentinels {
                if let port = await sentinel.masterPort(), port != old.port {
                    newPort = port
                    return true
                }
            }
            return false
        }
        let switchedAt = ContinuousClock.now
        guard let newMaster = cluster.servers.first(where: { $0.port == newPort }) else { throw TestFailure("unknown new master \(String(describing: newPort))") }
        var missing = "nothing checked yet"
        do {
            try await eventually(timeout: .seconds(15), "\(name): nodes on the new master and delivering") {
                missing = try await Self.notYetMoved(to: newMaster, since: switchedAt, watched, log)
                return missing.isEmpty
            }
        } catch {
            throw TestFailure("\(error): \(missing)")
        }
        let measured = Measured(name: name, triggeredAt: triggeredAt, switchedAt: switchedAt, movedAt: .now)
        print("sentinel failover: \(name): new master named after \(triggeredAt.duration(to: switchedAt)), nodes moved and delivering \(measured.moved) after that")
        return measured
    }

    /// What is still missing for the nodes to count as moved to `newMaster` (empty once they
    /// have): both subscribed there, each node's publishes landing there, every client
    /// receiving events published after the switch.
    private static func notYetMoved(
        to newMaster: RedisServerProcess,
        since switchedAt: ContinuousClock.Instant,
        _ watched: [Watched],
        _ log: PublishLog
    ) async throws -> String {
        for channel in ["ch1", "ch2"] {
            let count = try await newMaster.subscriberCount(channel)
            if count != 2 { return "\(count) subscribers of \(channel) on the new master" }
        }
        let after = log.acks.filter { $0.sentAt > switchedAt }
        for node in 0..<2 {
            guard let last = after.last(where: { $0.node == node }), let id = last.id else { return "no publish of node \(node) acknowledged since" }
            guard case .array(let entries) = try await newMaster.command("XRANGE", "sse:history:stream:\(last.channel)", id, id), entries.count == 1 else {
                return "node \(node)'s publish \(id) is not on the new master"
            }
        }
        let published = Set(after.map(\.payload))
        for (index, stream) in watched.enumerated() {
            if !(try Self.received(stream.client).payloads.contains { published.contains($0) }) { return "stream \(index) got nothing published since; its last frames: \((try? stream.client.frames().suffix(4)) ?? [])" }
        }
        return ""
    }

    /// Publishes `n<index>-<k>` through the node's `POST /publish`, alternating ch1 and ch2,
    /// every 25 ms, recording what was acknowledged.
    private static func publishUntilCancelled(_ node: BrokerNode, index: Int, log: PublishLog) async {
        var number = 0
        while !Task.isCancelled {
            number += 1
            let channel = number.isMultiple(of: 2) ? "ch2" : "ch1"
            let payload = "n\(index)-\(number)"
            let sentAt = ContinuousClock.now
            if let response = try? await node.request("POST", "/publish?channel=\(channel)", body: PythonJSONEncoder.encode(["data": .string(payload)])),
                response.status == 200
            {
                var id: String?
                if case .object(let answer)? = try? JSONParser.parse(response.body), case .string(let text)? = answer["id"] { id = text }
                log.record(PublishLog.Ack(node: index, channel: channel, payload: payload, id: id, sentAt: sentAt, ackedAt: .now))
            }
            try? await Task.sleep(for: .milliseconds(25))
        }
    }

    private static func pollReadiness(_ nodes: [BrokerNode], log: ReadinessLog) async {
        while !Task.isCancelled {
            for node in nodes {
                if let response = try? await node.request("GET", "/readyz") { log.record(ready: response.status == 200) }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The data of each event a stream got, and how many history-gap notices.
    static func received(_ client: StreamClient) throws -> (payloads: [String], gaps: Int) {
        var payloads: [String] = []
        var gaps = 0
        for event in try client.events() {
            if event.hasPrefix("event:history-gap\n") {
                gaps += 1
                continue
            }
            if let line = event.split(separator: "\n").first(where: { $0.hasPrefix("data:") }) {
                payloads.append(String(line.dropFirst("data:".count)))
            }
        }
        return (payloads, gaps)
    }
}

/// Publishes the test's nodes acknowledged (200), with when they were sent and answered.
final class PublishLog: Sendable {
    struct Ack: Sendable {
        let node: Int
        let channel: String
        let payload: String
        let id: String?
        let sentAt: ContinuousClock.Instant
        let ackedAt: ContinuousClock.Instant
    }

    private let entries = Mutex<[Ack]>([])

    func record(_ ack: Ack) { entries.withLock { $0.append(ack) } }

    var acks: [Ack] { entries.withLock { $0 } }

    /// `k` of a payload `n<node>-<k>`, for that node.
    static func number(of payload: String, node: Int) -> Int? {
        let prefix = "n\(node)-"
        guard payload.hasPrefix(prefix) else { return nil }
        return Int(payload.dropFirst(prefix.count))
    }
}

/// `/readyz` answers seen, with their time.
final class ReadinessLog: Sendable {
    private let entries = Mutex<[(at: ContinuousClock.Instant, ready: Bool)]>([])

    func record(ready: Bool) { entries.withLock { $0.append((.now, ready)) } }

    func sawDown(between start: ContinuousClock.Instant, and end: ContinuousClock.Instant) -> Bool {
        entries.withLock { entries in entries.contains { $0.at >= start && $0.at <= end && !$0.ready } }
    }
}
