//! Prometheus metrics (`GET /metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP status code.
    pub status: u16,
}

/// Labels of the refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitedLabels {
    /// The rate class or quota.
    pub class: String,
    /// What its keys are: `ip`, `user`, `device`, `peer`, `victim`, or `quota`.
    pub scope: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency, seconds.
    pub latency: Histogram,
    /// Messages appended.
    pub messages: Counter,
    /// Topic changes appended (including creates).
    pub changes: Counter,
    /// Topics created.
    pub topics_created: Counter,
    /// Hosted topics loaded in memory.
    pub topics_loaded: Gauge,
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// Wake-ups waiting to be delivered.
    pub wakeup_queue: Gauge,
    /// Requests refused by a rate class or a quota, since start (set at each scrape).
    pub limited: Family<LimitedLabels, Counter>,
    /// The store: 0 ok, 1 low on space (large writes refused), 2 faulted (writes refused).
    pub storage_state: Gauge,
    /// Peers' directories this server holds evidence against (`directory.md` §5).
    pub directory_evidence: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rendezvous");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Histogram::new([
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
        ]);
        let messages = Counter::default();
        let changes = Counter::default();
        let topics_created = Counter::default();
        let topics_loaded = Gauge::default();
        let connections = Gauge::default();
        let wakeup_queue = Gauge::default();
        let limited = Family::<LimitedLabels, Counter>::default();
        let storage_state = Gauge::default();
        let directory_evidence = Gauge::default();
        registry.register(
            "directory_evidence",
            "Peers whose directory contradicted itself (evidence kept)",
            directory_evidence.clone(),
        );
        registry.register(
            "limited",
            "Requests refused by a rate class or a quota",
            limited.clone(),
        );
        registry.register(
            "storage_state",
            "The store: 0 ok, 1 low space, 2 faulted",
            storage_state.clone(),
        );
        registry.register(
            "http_requests",
            "Client API requests answered",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Client API request latency",
            latency.clone(),
        );
        registry.register(
            "messages_appended",
            "Messages appended to topic logs",
            messages.clone(),
        );
        registry.register(
            "changes_appended",
            "Topic changes appended",
            changes.clone(),
        );
        registry.register("topics_created", "Topics created", topics_created.clone());
        registry.register(
            "topics_loaded",
            "Hosted topics held in memory",
            topics_loaded.clone(),
        );
        registry.register(
            "websocket_connections",
            "Open WebSocket streams",
            connections.clone(),
        );
        registry.register(
            "wakeup_queue_depth",
            "Wake-ups waiting to be delivered",
            wakeup_queue.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            messages,
            changes,
            topics_created,
            topics_loaded,
            connections,
            wakeup_queue,
            limited,
            storage_state,
            directory_evidence,
        }
    }
}

impl Metrics {
    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
