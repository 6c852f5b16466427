import Foundation
import SSERedis
import Testing

@Suite("Redis outages", .timeLimit(.minutes(3)))
struct RedisOutageTests {
    @Test("Redis killed and restarted under live streams on two nodes: readyz follows, publish fails fast, heartbeats flow, events resume without reconnecting")
    func killAndRestart() async throws {
        try await withRedis { redis in
            // History off: this Redis keeps no data across the kill; history across restarts is in HistoryTests.
            try await withNodes(2, redis: try redis.configuration, configure: { $0.heartbeatSeconds = 0.1; $0.history = .disabled }) { nodes in
                try await Self.killAndRestart(redis: redis, nodes: nodes)
            }
        }
    }

    private static func killAndRestart(redis: RedisServerProcess, nodes: [BrokerNode]) async throws {
        var clients: [StreamClient] = []
        for node in nodes { clients.append(try await node.stream("live")) }
        try await redis.waitForSubscribers("live", count: 2)
        _ = try await redis.command("PUBLISH", "live", "before")
        for client in clients { try await client.waitForEvents(1) }

        redis.kill()
        for node in nodes {
            try await eventually("readyz 503 while Redis is down") {
                try await node.request("GET", "/readyz").status == 503
            }
            let publish = try await node.request("POST", "/publish?channel=live", body: Array(#"{"data": "lost"}"#.utf8))
            #expect(publish.status == 503)
            #expect(publish.bodyText.contains("error"))
            #expect(try await node.request("GET", "/healthz").status == 200)
        }
        let heartbeatsDuringOutage = try clients.map { try $0.frames().count }
        try await eventually("heartbeats keep flowing during the outage") {
            try zip(clients, heartbeatsDuringOutage).allSatisfy { try $0.frames().count >= $1 + 3 }
        }

        try await redis.restart()
        for node in nodes {
            try await eventually("readyz 200 after Redis is back") {
                try await node.request("GET", "/readyz").status == 200
            }
        }
        try await redis.waitForSubscribers("live", count: 2)
        let publish = try await nodes[0].request("POST", "/publish?channel=live", body: Array(#"{"data": "after"}"#.utf8))
        #expect(publish.status == 200)
        #expect(publish.bodyText == #"{"receivers": 2}"#)
        for client in clients {
            #expect(try await client.waitForEvents(2) == ["data:before\n\n", "data:after\n\n"])
            #expect(!client.connection.isClosed)
        }
        for client in clients { await client.close() }
    }

    @Test("a node starts and serves streams while Redis is down, and subscribes once Redis appears")
    func startWithoutRedis() async throws {
        let redis = try await RedisServerProcess()
        let configuration = try redis.configuration
        redis.kill()
        let broker = try await BrokerProcess(redisURL: redis.url(), arguments: ["--heartbeat", "0.1"])
        let client = try await StreamClient.open(port: broker.port, "/stream?channel=early")
        #expect(try await client.head().status == 200)
        try await eventually("heartbeats without Redis") { try client.frames().count >= 2 }
        let ready = try await TestConnection.connect(port: broker.port)
        try await ready.send("GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try await ready.waitForClose()
        #expect(try HTTPResponse.parse(ready.received)?.status == 503)
        try await redis.restart()
        try await redis.waitForSubscribers("early", count: 1)
        let publisher = RedisCommandClient(redis: configuration, logger: .init(label: "test"))
        defer { publisher.shutdown() }
        _ = try await publisher.send("PUBLISH", "early", "finally")
        #expect(try await client.waitForEvents(1) == ["data:finally\n\n"])
        await client.close()
        #expect(try await broker.stop() == 0)
    }
}

@Suite("Publishing across a Redis restart")
struct PublisherRestartTests {
    @Test("a publisher whose idle connection died with a Redis restart publishes on the first try after")
    func staleConnection() async throws {
        try await withRedis { redis in
            let tap = try RedisTap(redis: try redis.configuration, channel: "again")
            defer { tap.stop() }
            try await withNode(redis: try redis.configuration, configure: { $0.history = .disabled }) { node in
                try await redis.waitForSubscribers("again", count: 1)
                #expect(try await node.request("POST", "/publish?channel=again", body: Array(#"{"data": 1}"#.utf8)).status == 200)
                try await redis.restart()
                try await redis.waitForSubscribers("again", count: 1)
                let response = try await node.request("POST", "/publish?channel=again", body: Array(#"{"data": 2}"#.utf8))
                #expect(response.status == 200, "\(response.bodyText)")
                #expect(try await tap.waitForPayloads(2).map { String(decoding: $0, as: UTF8.self) } == [#"{"data": 1}"#, #"{"data": 2}"#])
            }
        }
    }
}
