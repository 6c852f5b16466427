import NIOCore
import SSERedis

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
    /// Bytes that may wait unsent for one client before it is cut off as too slow.
    public var clientBufferBytes: Int
    /// Largest accepted `POST /publish` body, in bytes.
    public var maxPayloadBytes: Int
    /// Longest accepted channel name, in UTF-8 bytes.
    public var maxChannelNameBytes: Int
    /// Subscriber reconnect and liveness tuning.
    public var subscriber: RedisSubscriber.Configuration

    public init(
        host: String = "127.0.0.1",
        port: Int = 5000,
        redis: RedisConfiguration,
        threads: Int = System.coreCount,
        heartbeatSeconds: Double = 15,
        clientBufferBytes: Int = 1 << 20,
        maxPayloadBytes: Int = 1 << 20,
        maxChannelNameBytes: Int = 256,
        subscriber: RedisSubscriber.Configuration = .init()
    ) {
        self.host = host
        self.port = port
        self.redis = redis
        self.threads = max(1, threads)
        self.heartbeatSeconds = heartbeatSeconds
        self.clientBufferBytes = clientBufferBytes
        self.maxPayloadBytes = maxPayloadBytes
        self.maxChannelNameBytes = maxChannelNameBytes
        self.subscriber = subscriber
    }
}
