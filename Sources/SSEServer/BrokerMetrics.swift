import Metrics
import Prometheus

/// A node's metrics, through swift-metrics into its own Prometheus registry, served at
/// `GET /metrics` in Prometheus text format.
///
/// Each node owns its registry (rather than bootstrapping the process-wide `MetricsSystem`),
/// so several nodes in one process, as in tests, each report their own figures. Hot-path
/// figures are added per batch, never per client per event.
final class BrokerMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    let connectedClients: Metrics.Gauge
    let channelsSubscribed: Metrics.Gauge
    let eventsReceived: Metrics.Counter
    let eventsDelivered: Metrics.Counter
    let bytesDelivered: Metrics.Counter
    let eventsReplayed: Metrics.Counter
    let slowClientsCutOff: Metrics.Counter
    let redisReconnects: Metrics.Counter
    let publishes: Metrics.Counter
    let publishErrors: Metrics.Counter
    /// Channels Redis refused to subscribe (an ACL without access): refusals, and how many are refused now.
    let subscriptionRefusals: Metrics.Counter
    /// Times an event loop fell so far behind that its deliveries were dropped for a catch-up.
    let loopsBehind: Metrics.Counter
    let channelsRefused: Metrics.Gauge
    /// Seconds from publish to write, for events whose data carries `publishedAt` (Unix ms):
    /// one observation per event per event loop that writes it.
    let deliveryDelay: Metrics.Timer

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        connectedClients = Metrics.Gauge(label: "sse_connected_clients", factory: factory)
        channelsSubscribed = Metrics.Gauge(label: "sse_channels_subscribed", factory: factory)
        eventsReceived = Metrics.Counter(label: "sse_events_received_total", factory: factory)
        eventsDelivered = Metrics.Counter(label: "sse_events_delivered_total", factory: factory)
        bytesDelivered = Metrics.Counter(label: "sse_bytes_delivered_total", factory: factory)
        eventsReplayed = Metrics.Counter(label: "sse_events_replayed_total", factory: factory)
        slowClientsCutOff = Metrics.Counter(label: "sse_slow_clients_disconnected_total", factory: factory)
        redisReconnects = Metrics.Counter(label: "sse_redis_reconnects_total", factory: factory)
        publishes = Metrics.Counter(label: "sse_publishes_total", factory: factory)
        publishErrors = Metrics.Counter(label: "sse_publish_errors_total", factory: factory)
        subscriptionRefusals = Metrics.Counter(label: "sse_subscription_refusals_total", factory: factory)
        loopsBehind = Metrics.Counter(label: "sse_loop_behind_total", factory: factory)
        channelsRefused = Metrics.Gauge(label: "sse_channels_refused", factory: factory)
        deliveryDelay = Metrics.Timer(label: "sse_publish_to_write_seconds", factory: factory)
    }

    /// The Prometheus text exposition.
    func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }
}
