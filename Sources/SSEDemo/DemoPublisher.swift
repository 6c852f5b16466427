import Logging
import SSEPublisher
import SSERedis
import SSEWire
import SSEStreamCore
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Publishes the demo page's live data (`--demo`): a clock tick every second on `demo.clock`
/// (one node per second, chosen by a Redis `SET NX` lock, so a cluster ticks once), this node's
/// status every two seconds on `demo.status`, and background-task progress on `demo.task`.
///
/// A swift-service-lifecycle `Service`: it runs until cancelled or, in a `ServiceGroup`, until a
/// graceful shutdown begins.
package final class DemoPublisher: Service, Sendable {
    private let publisher: SSEPublisher
    private let redis: RedisCommandClient
    private let nodeName: String
    private let streams: @Sendable () -> Int
    private let logger: Logger
    /// Most background tasks running at once; `POST /demo/task` beyond it gets 429.
    package let maxTasks: Int
    private let runningTasks = Mutex(0)

    package init(
        publisher: SSEPublisher,
        redis: RedisConfiguration,
        nodeName: String,
        maxTasks: Int = 8,
        streams: @escaping @Sendable () -> Int,
        logger: Logger
    ) {
        self.maxTasks = maxTasks
        self.publisher = publisher
        self.redis = RedisCommandClient(redis: redis.routed(toSlot: ClusterSlot.slot(of: Self.clockLockTag)), logger: logger)
        self.nodeName = nodeName
        self.streams = streams
        self.logger = logger
    }

    /// Runs the clock and status loops until cancelled or a graceful shutdown.
    package func run() async {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.clockLoop() }
                group.addTask { await self.statusLoop() }
            }
        }
        redis.shutdown()
    }

    /// The clock locks' key prefix, a hash tag: on a Redis Cluster every lock is in one slot.
    static let clockLockTag = "{sse:demo:clock}"

    private func clockLoop() async {
        while !Task.isCancelled {
            let now = Self.unixSeconds()
            let second = Int(now)
            try? await Task.sleep(for: .milliseconds(max(1, Int((Double(second + 1) - now) * 1000))))
            // Every node tries; the one that takes this second's lock publishes.
            let lock = try? await redis.send("SET", "\(Self.clockLockTag):\(second + 1)", nodeName, "NX", "EX", "10")
            guard case .status("OK")? = lock else { continue }
            let time = Self.timeOfDay(second + 1)
            _ = try? await publisher.publish(
                data: ["time": .string(time), "iso": .string(Self.iso(second + 1)), "node": .string(nodeName)],
                type: "tick",
                channel: "demo.clock"
            )
        }
    }

    private func statusLoop() async {
        while !Task.isCancelled {
            let started = ContinuousClock.now
            let reply = try? await redis.send("PING")
            let elapsed = started.duration(to: .now)
            let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            let up = reply == .status("PONG")
            _ = try? await publisher.publish(
                data: [
                    "node": .string(nodeName), "redis": .string(up ? "up" : "down"),
                    "responseMs": .float((milliseconds * 100).rounded() / 100), "streams": .integer(JSONInteger(streams())),
                    "time": .string(Self.timeOfDay(Int(Self.unixSeconds()))),
                ],
                type: "status",
                channel: "demo.status"
            )
            try? await Task.sleep(for: .seconds(2))
        }
    }

    /// Starts a background task that reports progress 0...100 over five seconds; returns its id,
    /// or nil when `maxTasks` are already running. Each task publishes 21 events over five
    /// seconds, so the limit bounds what `POST /demo/task` can make a node publish to about
    /// `maxTasks` × 4 events a second.
    package func startTask() -> String? {
        let admitted = runningTasks.withLock { running in
            guard running < maxTasks else { return false }
            running += 1
            return true
        }
        guard admitted else { return nil }
        let id = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let publisher = self.publisher
        let nodeName = self.nodeName
        Task { [self] in
            for step in 0...20 {
                _ = try? await publisher.publish(
                    data: ["task": .string(id), "progress": .integer(JSONInteger(step * 5)), "node": .string(nodeName)],
                    type: "progress",
                    channel: "demo.task"
                )
                try? await Task.sleep(for: .milliseconds(250))
            }
            runningTasks.withLock { $0 -= 1 }
        }
        return id
    }

    package static func timeOfDay(_ unix: Int) -> String {
        let seconds = ((unix % 86_400) + 86_400) % 86_400
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(two(seconds / 3600)):\(two(seconds / 60 % 60)):\(two(seconds % 60))"
    }

    package static func iso(_ unix: Int) -> String {
        var time = time_t(unix)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))Z"
    }

    /// Unix time in seconds: the clock's ticks name wall-clock seconds.
    private static func unixSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
