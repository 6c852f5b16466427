import Metrics
import Prometheus
import SSEStreamCore
import Synchronization

/// A node's own Prometheus registry and the metrics recorded into it, served at `GET /metrics`
/// in Prometheus text format.
final class PrometheusMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    let metrics: BrokerMetrics
    /// Open connections, HTTP/1 and HTTP/2 (what `--max-connections` counts): `sse_connections`.
    /// Streams are `sse_connected_clients`.
    let connections: Metrics.Gauge
    /// Of those, the ones speaking HTTP/2: `sse_http2_connections`.
    private let http2Connections: Metrics.Gauge
    private let http2Open = Atomic<Int>(0)

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        metrics = BrokerMetrics(factory: factory)
        connections = Metrics.Gauge(label: "sse_connections", factory: factory)
        http2Connections = Metrics.Gauge(label: "sse_http2_connections", factory: factory)
        connections.record(0)
        http2Connections.record(0)
    }

    /// An HTTP/2 connection opened (+1) or closed (-1).
    func http2ConnectionsChanged(by change: Int) {
        http2Connections.record(http2Open.add(change, ordering: .relaxed).newValue)
    }

    /// The Prometheus text exposition.
    func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }
}
