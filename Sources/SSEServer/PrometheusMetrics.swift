import Metrics
import Prometheus
import SSEStreamCore

/// A node's own Prometheus registry and the metrics recorded into it, served at `GET /metrics`
/// in Prometheus text format.
final class PrometheusMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    let metrics: BrokerMetrics

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        metrics = BrokerMetrics(factory: factory)
    }

    /// The Prometheus text exposition.
    func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }
}
