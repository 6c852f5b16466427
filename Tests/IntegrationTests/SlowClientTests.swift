import Foundation
import SSERedis
import Synchronization
import Testing

@Suite("Slow clients", .timeLimit(.minutes(3)))
struct SlowClientTests {
    @Test("a client that never reads is cut off; 100 readers get all 20,000 events in order; memory stays bounded")
    func slowClientCutOff() async throws {
        let redis = try await RedisServerProcess()
        let broker = try await BrokerProcess(redisURL: redis.url(), arguments: ["--client-buffer", "65536", "--heartbeat", "0"])
        let baseline = try broker.residentBytes()
        let stalled = try await TestConnection.connect(port: broker.port, autoRead: false, receiveBuffer: 4096)
        try await stalled.send("GET /stream?channel=firehose HTTP/1.1\r\nHost: x\r\n\r\n")
        var readers: [CountingStreamClient] = []
        for _ in 0..<100 { readers.append(try await CountingStreamClient.open(port: broker.port, channel: "firehose")) }
        try await redis.waitForSubscribers("firehose", count: 1)

        let total = 20_000
        let publisher = try NumberedPublisher(redis: redis, channel: "firehose", padding: 200)
        defer { publisher.shutdown() }
        try await publisher.publish(0..<total)
        try await eventually(timeout: .seconds(60), "every reader to get every event") {
            readers.allSatisfy { $0.snapshot.events == total }
        }
        let peak = try broker.residentBytes()
        print("slow client: broker RSS \(baseline / 1024) KiB -> \(peak / 1024) KiB with 101 clients after \(total) events")
        for reader in readers {
            let tally = reader.snapshot
            #expect(tally.outOfOrder == 0)
            #expect(tally.error == nil)
            #expect(!tally.closed)
        }
        // The stalled client's socket is closed by the server; it never read, so it sees that only now.
        #expect(try await redis.command("PUBSUB", "NUMSUB", "firehose") == .array([.bulkString(Array("firehose".utf8)), .integer(1)]))
        #expect(peak - baseline < 64 * 1024 * 1024, "broker memory grew by \((peak - baseline) / 1024) KiB")
        try await stalledWasCutOff(stalled, broker: broker)
        for reader in readers { await reader.close() }
        #expect(try await broker.stop() == 0)
    }

    @Test("a client that stops reading, within its buffer, gets every event in order when it reads again, and after")
    func pausedClientCatchesUp() async throws {
        let redis = try await RedisServerProcess()
        let broker = try await BrokerProcess(redisURL: redis.url(), arguments: ["--client-buffer", String(64 << 20), "--heartbeat", "0"])
        let paused = try await CountingStreamClient.open(port: broker.port, channel: "backlog", receiveBuffer: 4096)
        let steady = try await CountingStreamClient.open(port: broker.port, channel: "backlog")
        try await redis.waitForSubscribers("backlog", count: 1)
        try await paused.pause()

        // 16 MB: more than the kernel's socket buffers hold, so most of it waits in the broker
        // and the stream's direct writes give way to the channel, then come back.
        let publisher = try NumberedPublisher(redis: redis, channel: "backlog", padding: 4096)
        defer { publisher.shutdown() }
        try await publisher.publish(0..<4000)
        try await eventually(timeout: .seconds(60), "the steady reader to get every event") { steady.snapshot.events == 4000 }
        #expect(paused.snapshot.events < 4000, "the paused client should not have everything yet")

        try await paused.resume()
        try await eventually(timeout: .seconds(60), "the paused client to catch up") { paused.snapshot.events == 4000 }
        try await publisher.publish(4000..<4100)
        try await eventually(timeout: .seconds(60), "both to get the later events") {
            paused.snapshot.events == 4100 && steady.snapshot.events == 4100
        }
        for client in [paused, steady] {
            let tally = client.snapshot
            #expect(tally.outOfOrder == 0)
            #expect(tally.error == nil)
            #expect(!tally.closed)
            await client.close()
        }
        #expect(try await broker.stop() == 0)
    }

    /// Reads the stalled connection now: the server must have closed it (EOF after its backlog).
    private func stalledWasCutOff(_ connection: TestConnection, broker: BrokerProcess) async throws {
        let drainer = Task {
            try await connection.waitForClose(timeout: .seconds(30))
        }
        connection.startReading()
        try await drainer.value
        #expect(connection.isClosed)
    }
}

/// Publishes events `data: N xxx…` (Flask-SSE payloads, N the sequence number) on one channel,
/// pipelined, and waits until Redis has answered every PUBLISH.
private final class NumberedPublisher: Sendable {
    private let client: RedisCommandClient
    private let channel: String
    private let padding: String
    private let answered = Mutex(0)

    init(redis: RedisServerProcess, channel: String, padding: Int) throws {
        client = RedisCommandClient(redis: try redis.configuration, logger: .init(label: "test"))
        self.channel = channel
        self.padding = String(repeating: "x", count: padding)
    }

    func publish(_ sequences: Range<Int>) async throws {
        let expected = answered.withLock { $0 } + sequences.count
        for sequence in sequences {
            let payload = Array(#"{"data": "\#(sequence) \#(padding)"}"#.utf8)
            client.send([Array("PUBLISH".utf8), Array(channel.utf8), payload]) { _ in
                self.answered.withLock { $0 += 1 }
            }
        }
        try await eventually(timeout: .seconds(60), "all publishes answered") { answered.withLock { $0 } >= expected }
    }

    func shutdown() {
        client.shutdown()
    }
}
