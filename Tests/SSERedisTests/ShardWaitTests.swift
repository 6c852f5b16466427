import Foundation
import Logging
import SSERedis
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A one-node "Redis Cluster" on loopback that serves every slot itself, answers `CLUSTER SLOTS`,
/// `SUBSCRIBE`, `SSUBSCRIBE`, `PING`, and lets a test cut the sharded link and script what the
/// next `SSUBSCRIBE` gets back (its confirmation and a `smessage` in one write).
private final class FakeShardNode: @unchecked Sendable {
    // @unchecked: `listener` and `port` are immutable; everything else is behind `state`.
    let port: Int
    private let listener: Int32
    private struct State {
        var shardLinks: [Int32] = []
        var ssubscribes = 0
        /// Sent right after the confirmation, in the same write, from the second SSUBSCRIBE on.
        var follow: [UInt8] = []
        var stopped = false
        var open: [Int32] = []
        /// Channels whose SSUBSCRIBE is refused (an ACL without them).
        var refuse: Set<String> = []
        /// Classic SUBSCRIBEs end their connection (the classic link never comes up).
        var dropClassic = false
    }
    private let state = Mutex(State())

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard descriptor >= 0, bound == 0, listen(descriptor, 16) == 0 else { throw FakeError() }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        listener = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread { [self] in acceptLoop() }.start()
    }

    struct FakeError: Error {}

    var ssubscribes: Int { state.withLock { $0.ssubscribes } }

    func follow(with bytes: [UInt8]) { state.withLock { $0.follow = bytes } }

    func refuse(_ channels: Set<String>) { state.withLock { $0.refuse = channels } }

    func dropClassicLinks() { state.withLock { $0.dropClassic = true } }

    /// Cuts every sharded link (the client sees the connection end).
    func dropShardLinks() {
        state.withLock { state in
            for link in state.shardLinks { shutdown(link, Int32(SHUT_RDWR)) }
            state.shardLinks = []
        }
    }

    func stop() {
        state.withLock { state in
            state.stopped = true
            for link in state.open { shutdown(link, Int32(SHUT_RDWR)) }
        }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    private func acceptLoop() {
        defer { close(listener) }
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            let admitted = state.withLock { state in
                if state.stopped { return false }
                state.open.append(client)
                return true
            }
            guard admitted else {
                close(client)
                return
            }
            Thread { [self] in serve(client) }.start()
        }
    }

    static func bulk(_ text: String) -> String { "$\(text.utf8.count)\r\n\(text)\r\n" }

    private func serve(_ client: Int32) {
        defer {
            state.withLock { state in state.open.removeAll { $0 == client } }
            close(client)
        }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(client, &chunk, chunk.count)
            guard count > 0 else { return }
            buffer += chunk[0..<count]
            while let (command, used) = Self.parse(buffer) {
                buffer.removeFirst(used)
                guard let reply = answer(command, client) else { continue }
                var sent = 0
                while sent < reply.count {
                    let written = reply[sent...].withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
                    guard written > 0 else { return }
                    sent += written
                }
            }
        }
    }

    private func answer(_ command: [String], _ client: Int32) -> [UInt8]? {
        guard let verb = command.first?.uppercased() else { return nil }
        switch verb {
        case "CLUSTER":
            return Array("*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n\(Self.bulk("127.0.0.1")):\(port)\r\n\(Self.bulk("fake"))".utf8)
        case "SUBSCRIBE" where state.withLock({ $0.dropClassic }):
            shutdown(client, Int32(SHUT_RDWR))
            return nil
        case "SUBSCRIBE", "SSUBSCRIBE":
            let kind = verb == "SUBSCRIBE" ? "subscribe" : "ssubscribe"
            var reply = ""
            for (index, channel) in command.dropFirst().enumerated() { reply += "*3\r\n\(Self.bulk(kind))\(Self.bulk(channel)):\(index + 1)\r\n" }
            var bytes = Array(reply.utf8)
            if verb == "SSUBSCRIBE" {
                if state.withLock({ state in command.dropFirst().contains(where: state.refuse.contains) }) {
                    return Array("-NOPERM this user has no permissions to access one of the channels used as arguments\r\n".utf8)
                }
                state.withLock { state in
                    state.shardLinks.append(client)
                    state.ssubscribes += 1
                    if state.ssubscribes > 1 { bytes += state.follow }
                }
            }
            return bytes
        case "PING":
            return Array("*2\r\n\(Self.bulk("pong"))\(Self.bulk(""))".utf8)
        case "UNSUBSCRIBE", "SUNSUBSCRIBE":
            let kind = verb == "UNSUBSCRIBE" ? "unsubscribe" : "sunsubscribe"
            return Array(command.dropFirst().map { "*3\r\n\(Self.bulk(kind))\(Self.bulk($0)):0\r\n" }.joined().utf8)
        default:
            return Array("-ERR unknown command\r\n".utf8)
        }
    }

    /// One RESP array of bulk strings from the front of `buffer`, and the bytes it used.
    static func parse(_ buffer: [UInt8]) -> ([String], Int)? {
        func line(from start: Int) -> (String, Int)? {
            var index = start
            while index + 1 < buffer.count {
                if buffer[index] == 13, buffer[index + 1] == 10 { return (String(decoding: buffer[start..<index], as: UTF8.self), index + 2) }
                index += 1
            }
            return nil
        }
        guard let (head, afterHead) = line(from: 0), head.hasPrefix("*"), let count = Int(head.dropFirst()) else { return nil }
        var position = afterHead
        var parts: [String] = []
        for _ in 0..<count {
            guard let (size, afterSize) = line(from: position), size.hasPrefix("$"), let length = Int(size.dropFirst()) else { return nil }
            guard afterSize + length + 2 <= buffer.count else { return nil }
            parts.append(String(decoding: buffer[afterSize..<(afterSize + length)], as: UTF8.self))
            position = afterSize + length + 2
        }
        return (parts, position)
    }
}

/// Records the order of the delegate's calls.
private final class CallOrder: RedisSubscriberDelegate {
    let calls = Mutex<[String]>([])
    func subscriber(_ subscriber: RedisSubscriber, received messages: [RedisPubSubMessage]) {
        calls.withLock { $0 += messages.map { "received \($0.channel)" } }
    }
    func subscriberDidConnect(_ subscriber: RedisSubscriber) {}
    func subscriber(_ subscriber: RedisSubscriber, didDisconnectWith error: RedisError) {}
    func subscriber(_ subscriber: RedisSubscriber, resubscribed channels: [String]) {
        calls.withLock { $0 += channels.map { "resubscribed \($0)" } }
    }
}

@Suite("Cluster subscriber: shard waits and resubscriptions, against a scripted node", .serialized, .timeLimit(.minutes(1)))
struct ShardWaitTests {
    static func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TimedOut(what: what) }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    struct TimedOut: Error { let what: String }

    @Test("history on the shards: a channel subscribed again on its shard is reported before any message the new subscription brings, so the hub's catch-up (which starts from where each stream stands) holds that message instead of starting past the gap (fails: a smessage in the same read as the confirmation reaches the delegate first)")
    func resubscribedBeforeTheNewSubscriptionsMessages() async throws {
        let node = try FakeShardNode()
        defer { node.stop() }
        var tuning = RedisSubscriber.Configuration(backoffBaseMilliseconds: 20, backoffCapMilliseconds: 40, pingIntervalMilliseconds: 5000)
        tuning.probeIntervalMilliseconds = 0
        tuning.historyOnShards = true
        var logger = Logger(label: "test.review")
        logger.logLevel = .critical
        let subscriber = try RedisSubscriber(redis: try RedisConfiguration(url: "redis+cluster://127.0.0.1:\(node.port)"), configuration: tuning, logger: logger)
        let order = CallOrder()
        subscriber.subscribe("news")
        subscriber.start(delegate: order)
        defer { subscriber.shutdown() }
        try await Self.waitUntil("the first SSUBSCRIBE") { node.ssubscribes >= 1 }
        try await Task.sleep(for: .milliseconds(100))
        node.follow(with: Array("*3\r\n\(FakeShardNode.bulk("smessage"))\(FakeShardNode.bulk("news"))\(FakeShardNode.bulk("{\"data\": \"after\"}"))".utf8))
        node.dropShardLinks()
        try await Self.waitUntil("the message and the resubscription") { order.calls.withLock { $0.count } >= 2 }
        let calls = order.calls.withLock { $0 }
        #expect(calls == ["resubscribed news", "received news"])
    }
    @Test("pubsub=sharded: one wanted channel a shard refuses (an ACL without it) does not make the whole subscription count as down (fails: isConnected, /readyz's input, flaps or stays false while the channel waits out its displacement)")
    func shardedOnlyStaysConnectedWithARefusedChannel() async throws {
        let node = try FakeShardNode()
        defer { node.stop() }
        node.refuse(["nope"])
        var tuning = RedisSubscriber.Configuration(backoffBaseMilliseconds: 20, backoffCapMilliseconds: 200, pingIntervalMilliseconds: 5000)
        tuning.probeIntervalMilliseconds = 0
        tuning.historyOnShards = true
        var logger = Logger(label: "test.review")
        logger.logLevel = .critical
        let subscriber = try RedisSubscriber(
            redis: try RedisConfiguration(url: "redis+cluster://127.0.0.1:\(node.port)?pubsub=sharded"), configuration: tuning, logger: logger
        )
        subscriber.subscribe("ok")
        subscriber.start(delegate: CallOrder())
        defer { subscriber.shutdown() }
        try await Self.waitUntil("connected with one good channel") { subscriber.isConnected && node.ssubscribes >= 1 }
        subscriber.subscribe("nope")
        var samples: [Bool] = []
        for _ in 0..<40 {
            try await Task.sleep(for: .milliseconds(50))
            samples.append(subscriber.isConnected)
        }
        #expect(samples.allSatisfy { $0 }, "isConnected over 2 s: \(samples.map { $0 ? "1" : "0" }.joined())")
    }
    @Test("history on the shards (pubsub=both): a resume's wait ends within its 10 s limit even while the classic link, which carries no event with history, cannot subscribe (fails: the wait needs the classic answer first, so it never runs)", .timeLimit(.minutes(1)))
    func shardWaitEndsWithoutTheClassicLink() async throws {
        let node = try FakeShardNode()
        defer { node.stop() }
        node.dropClassicLinks()
        var tuning = RedisSubscriber.Configuration(backoffBaseMilliseconds: 20, backoffCapMilliseconds: 200, pingIntervalMilliseconds: 1000)
        tuning.probeIntervalMilliseconds = 0
        tuning.historyOnShards = true
        var logger = Logger(label: "test.review")
        logger.logLevel = .critical
        let subscriber = try RedisSubscriber(redis: try RedisConfiguration(url: "redis+cluster://127.0.0.1:\(node.port)"), configuration: tuning, logger: logger)
        subscriber.subscribe("news")
        subscriber.start(delegate: CallOrder())
        defer { subscriber.shutdown() }
        try await Self.waitUntil("the shard's SSUBSCRIBE") { node.ssubscribes >= 1 }
        let ran = Mutex(false)
        subscriber.whenSubscribed(["news"]) { _ in ran.withLock { $0 = true } }
        let deadline = ContinuousClock.now.advanced(by: .seconds(13))
        while !ran.withLock({ $0 }), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(ran.withLock { $0 }, "the shard confirmed the channel; the wait never ran")
    }
}
