import NIOCore
import SSEAuth
import SSEHistory
import SSERedis
import SSEStreamCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything a broker node needs, parsed once at the entry point.
public struct BrokerConfiguration: Sendable {
    /// Address to listen on.
    public var host: String
    /// Port to listen on; 0 picks a free one (tests).
    public var port: Int
    /// Where Redis is.
    public var redis: RedisConfiguration
    /// Event loop threads; defaults to the number of cores.
    public var threads: Int
    /// Seconds between heartbeat comments on every stream; 0 turns them off.
    public var heartbeatSeconds: Double
    /// When set, a `retry:` line with this many milliseconds opens every stream.
    public var retryMilliseconds: Int?
    /// Bytes that may wait unsent for one client; a client whose backlog passes this when the
    /// next event arrives is cut off as too slow. One event is always accepted onto the backlog,
    /// so a client's memory is bounded by this plus one event.
    public var clientBufferBytes: Int
    /// Largest accepted `POST /publish` body, and largest Redis payload a node delivers.
    public var maxPayloadBytes: Int
    /// Largest accepted request head (request line and headers); beyond it, 431.
    public var maxHeadBytes: Int
    /// Open connections beyond which new ones get 503.
    public var maxConnections: Int
    /// Longest accepted channel name, in UTF-8 bytes.
    public var maxChannelNameBytes: Int
    /// Seconds a graceful shutdown may take before remaining connections are closed hard.
    public var drainTimeoutSeconds: Double
    /// Seconds a request (head and body) may take to arrive, from its first byte (from accept
    /// for a connection's first request); beyond it, 408 and close. Streams are not timed.
    public var requestTimeoutSeconds: Double
    /// Seconds a keep-alive connection may stay idle between requests before it is closed.
    public var idleTimeoutSeconds: Double
    /// Most channels one stream may name; beyond it, 400.
    public var maxChannelsPerStream: Int
    /// Most demo background tasks (`POST /demo/task`) running at once on this node; beyond, 429.
    public var maxDemoTasks: Int
    /// Subscriber reconnect and liveness tuning.
    public var subscriber: RedisSubscriber.Configuration
    /// Event history for `Last-Event-ID` resume; `.disabled` for Flask-SSE's behaviour.
    public var history: HistoryConfiguration
    /// Who may stream and publish.
    public var access: AccessConfiguration
    /// Origins allowed cross-origin (`*` for any, without credentials).
    public var corsOrigins: [String]
    /// Serve the demo page at `/` and publish its live data.
    public var demo: Bool
    /// This node's name, shown by the demo page (and in logs).
    public var nodeName: String
    /// TLS on the node's listener (HTTPS, HTTP/2 by ALPN); nil serves cleartext.
    public var tls: NodeTLSConfiguration?
    /// HTTP/2: offered by ALPN with TLS, with prior knowledge in cleartext under `--h2c`.
    public var http2: HTTP2Configuration

    /// Deliveries that may wait for one event loop before its clients are caught up from
    /// history instead (with history; without it, later deliveries are dropped and logged).
    /// Not a flag: tests lower it to stall a loop cheaply.
    package var maxQueuedDeliveriesPerLoop = 100_000
    /// Bytes that may wait for one event loop before the same catch-up (see
    /// `StreamCoreConfiguration.maxQueuedBytesPerLoop`). Not a flag.
    package var maxQueuedBytesPerLoop: Int?
    /// Least milliseconds between two flushes of live events on one event loop (see
    /// `StreamCoreConfiguration.flushIntervalMilliseconds`); 0 flushes every event at once.
    public var flushIntervalMilliseconds: Double = 5

    public init(
        host: String = "127.0.0.1",
        port: Int = 5000,
        redis: RedisConfiguration,
        threads: Int = System.coreCount,
        heartbeatSeconds: Double = 15,
        retryMilliseconds: Int? = nil,
        clientBufferBytes: Int = 256 * 1024,
        maxPayloadBytes: Int = 256 * 1024,
        maxHeadBytes: Int = 32 * 1024,
        maxConnections: Int = BrokerConfiguration.defaultMaxConnections,
        maxChannelNameBytes: Int = 256,
        drainTimeoutSeconds: Double = 10,
        requestTimeoutSeconds: Double = 10,
        idleTimeoutSeconds: Double = 60,
        maxChannelsPerStream: Int = 64,
        maxDemoTasks: Int = 8,
        subscriber: RedisSubscriber.Configuration = .init(),
        history: HistoryConfiguration = .default,
        access: AccessConfiguration = .init(),
        corsOrigins: [String] = [],
        demo: Bool = false,
        nodeName: String? = nil,
        tls: NodeTLSConfiguration? = nil,
        http2: HTTP2Configuration = .init()
    ) {
        self.host = host
        self.port = port
        self.redis = redis
        self.threads = max(1, threads)
        self.heartbeatSeconds = heartbeatSeconds
        self.retryMilliseconds = retryMilliseconds
        self.clientBufferBytes = clientBufferBytes
        self.maxPayloadBytes = maxPayloadBytes
        self.maxHeadBytes = maxHeadBytes
        self.maxConnections = maxConnections
        self.maxChannelNameBytes = maxChannelNameBytes
        self.drainTimeoutSeconds = drainTimeoutSeconds
        self.requestTimeoutSeconds = requestTimeoutSeconds
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.maxChannelsPerStream = maxChannelsPerStream
        self.maxDemoTasks = maxDemoTasks
        self.subscriber = subscriber
        self.history = history
        self.access = access
        self.corsOrigins = corsOrigins
        self.demo = demo
        self.nodeName = nodeName ?? "\(Self.hostname()):\(port)"
        self.tls = tls
        self.http2 = http2
    }

    /// This machine's host name, for the default node name.
    public static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "node" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The process's open-file limit less room for Redis connections, logs and listeners, so the
    /// node answers 503 before `accept()` starts failing with EMFILE.
    public static var defaultMaxConnections: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return 10_000 }
        return max(64, Int(clamping: limit.rlim_cur) - 128)
    }

    /// The stream core's part of this configuration.
    package var streamCore: StreamCoreConfiguration {
        var probed = subscriber
        if probed.probeNodeName == nil { probed.probeNodeName = nodeName }
        var core = StreamCoreConfiguration(
            redis: redis,
            subscriber: probed,
            history: history,
            heartbeatSeconds: heartbeatSeconds,
            retryMilliseconds: retryMilliseconds,
            clientBufferBytes: clientBufferBytes,
            maxPayloadBytes: maxPayloadBytes,
            announcedNodeName: demo ? nodeName : nil
        )
        core.maxQueuedDeliveriesPerLoop = maxQueuedDeliveriesPerLoop
        core.maxQueuedBytesPerLoop = maxQueuedBytesPerLoop
        core.flushIntervalMilliseconds = flushIntervalMilliseconds
        return core
    }
}
