import Metrics

/// A node's metrics, through swift-metrics into the factory its host gives (the standalone
/// node: its own Prometheus registry, served at `GET /metrics`).
///
/// Each node has its own factory (rather than bootstrapping the process-wide `MetricsSystem`),
/// so several nodes in one process, as in tests, each report their own figures. Hot-path
/// figures are added per batch, never per client per event.
package final class BrokerMetrics: Sendable {
    package let connectedClients: Metrics.Gauge
    package let channelsSubscribed: Metrics.Gauge
    package let eventsReceived: Metrics.Counter
    package let eventsDelivered: Metrics.Counter
    package let bytesDelivered: Metrics.Counter
    package let eventsReplayed: Metrics.Counter
    package let slowClientsCutOff: Metrics.Counter
    package let redisReconnects: Metrics.Counter
    package let publishes: Metrics.Counter
    package let publishErrors: Metrics.Counter
    /// Channels Redis refused to subscribe (an ACL without access): refusals, and how many are refused now.
    package let subscriptionRefusals: Metrics.Counter
    /// Times an event loop fell so far behind that its deliveries were dropped for a catch-up.
    package let loopsBehind: Metrics.Counter
    package let channelsRefused: Metrics.Gauge
    /// Channels whose live events skipped positions (events that never reached the
    /// subscription), each caught up from history.
    package let liveGaps: Metrics.Counter
    /// Times the delivery probe found the subscription connected but not delivering (then rebuilt).
    package let probeFailures: Metrics.Counter
    /// Seconds from publish to write, for events whose data carries `publishedAt` (Unix ms):
    /// one observation per event per event loop that writes it.
    package let deliveryDelay: Metrics.Timer

    package init(factory: any MetricsFactory) {
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
        liveGaps = Metrics.Counter(label: "sse_live_gaps_total", factory: factory)
        probeFailures = Metrics.Counter(label: "sse_redis_subscription_probe_failures_total", factory: factory)
        deliveryDelay = Metrics.Timer(label: "sse_publish_to_write_seconds", factory: factory)
    }
}
