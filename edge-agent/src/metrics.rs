//! The agent's Prometheus metrics: one [`Metrics`] per running agent, rendered as the
//! OpenMetrics text format by `GET /metrics` on the dashboard's listener (see `api`).
//!
//! Two kinds of series. **Counted where it happens**, cheaply: uplinks (an atomic add per frame,
//! on a counter resolved once at start, never a label lookup), the engine's batch transactions,
//! sync requests and HTTP requests (histograms: one short uncontended lock per observation, once
//! per batch or request, never per press). **Read when scraped**: connected devices, alerts by
//! state, the outbox's backlog, dead letters — the database and the gate already know them, so
//! they cost nothing between scrapes and are never stale (`api::metrics` sets them, then
//! renders).
//!
//! Every label has a small fixed set of values (device kinds, uplink kinds, alert states, lanes,
//! outcomes, route templates), so the number of series is bounded whatever devices or clients do.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The media type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = shared::metrics_text::OPENMETRICS_CONTENT_TYPE;

/// What an uplink was, as counted by `hallwatch_edge_uplinks_received_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UplinkKind {
    /// A button press.
    ButtonPress,
    /// A device withdrawing its press.
    CancelRequest,
    /// A heartbeat.
    Heartbeat,
    /// A camera's room count.
    Occupancy,
    /// A last will (the connection ended abnormally).
    LastWill,
    /// Bytes that did not decode as a frame.
    Undecodable,
}

impl UplinkKind {
    const ALL: [UplinkKind; 6] = [
        UplinkKind::ButtonPress,
        UplinkKind::CancelRequest,
        UplinkKind::Heartbeat,
        UplinkKind::Occupancy,
        UplinkKind::LastWill,
        UplinkKind::Undecodable,
    ];

    fn as_str(self) -> &'static str {
        match self {
            UplinkKind::ButtonPress => "button_press",
            UplinkKind::CancelRequest => "cancel_request",
            UplinkKind::Heartbeat => "heartbeat",
            UplinkKind::Occupancy => "occupancy",
            UplinkKind::LastWill => "last_will",
            UplinkKind::Undecodable => "undecodable",
        }
    }
}

/// Alert states, in the order they are rendered; every one is present, at 0 when none.
pub const ALERT_STATES: [&str; 5] = [
    "triggered",
    "escalated",
    "acknowledged",
    "resolved",
    "cancelled",
];

/// Device kinds, each rendered even at 0.
pub const DEVICE_KINDS: [&str; 2] = ["button", "camera"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabel {
    lane: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    lane: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The agent's series and the registry that renders them. Shared as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    uplinks: [Counter; UplinkKind::ALL.len()],
    engine_batch: Histogram,
    sync_requests: HistogramFamily<SyncLabels>,
    http_requests: HistogramFamily<HttpLabels>,
    connected_devices: Family<KindLabel, Gauge>,
    connected_integrations: Gauge,
    alerts: Family<StateLabel, Gauge>,
    outbox_records: Family<LaneLabel, Gauge>,
    outbox_bytes: Family<LaneLabel, Gauge>,
    outbox_oldest_age: Family<LaneLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    dead_letters: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Latency buckets from 0.5 ms to about 16 s, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series registered, at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hallwatch_edge");
        let uplink_family = Family::<KindLabel, Counter>::default();
        let uplinks = UplinkKind::ALL.map(|kind| {
            uplink_family.get_or_create_owned(&KindLabel {
                kind: kind.as_str(),
            })
        });
        registry.register(
            "uplinks_received",
            "Frames received from devices, by kind (uplinks/s is its rate)",
            uplink_family,
        );
        let engine_batch = latency();
        registry.register_with_unit(
            "engine_batch",
            "Time from BEGIN to COMMIT of one engine transaction (a batch of inputs)",
            Unit::Seconds,
            engine_batch.clone(),
        );
        let sync_requests: HistogramFamily<SyncLabels> = Family::new_with_constructor(latency);
        registry.register_with_unit(
            "sync_request",
            "Sync requests to the cloud by lane and outcome, from send to sorted answer",
            Unit::Seconds,
            sync_requests.clone(),
        );
        let http_requests: HistogramFamily<HttpLabels> = Family::new_with_constructor(latency);
        registry.register_with_unit(
            "http_request",
            "Local API requests by route template, method and status class",
            Unit::Seconds,
            http_requests.clone(),
        );
        let connected_devices = Family::<KindLabel, Gauge>::default();
        registry.register(
            "connected_devices",
            "Devices connected to the gate (past MQTT CONNECT), by kind",
            connected_devices.clone(),
        );
        let connected_integrations = Gauge::default();
        registry.register(
            "connected_integrations",
            "Integrations connected to the gate",
            connected_integrations.clone(),
        );
        let alerts = Family::<StateLabel, Gauge>::default();
        registry.register(
            "alerts",
            "Alerts held in the gateway's database, by state",
            alerts.clone(),
        );
        let outbox_records = Family::<LaneLabel, Gauge>::default();
        registry.register(
            "outbox_backlog_records",
            "Outbox records the cloud has not acknowledged, by lane",
            outbox_records.clone(),
        );
        let outbox_bytes = Family::<LaneLabel, Gauge>::default();
        registry.register_with_unit(
            "outbox_backlog",
            "Stored size of the unacknowledged outbox records, by lane",
            Unit::Bytes,
            outbox_bytes.clone(),
        );
        let outbox_oldest_age = Family::default();
        registry.register_with_unit(
            "outbox_oldest_age",
            "Age of the oldest unacknowledged outbox record, by lane (0 when empty)",
            Unit::Seconds,
            outbox_oldest_age.clone(),
        );
        let dead_letters = Gauge::default();
        registry.register(
            "dead_letters",
            "Records the cloud refused and the gateway set aside",
            dead_letters.clone(),
        );
        Metrics {
            registry,
            uplinks,
            engine_batch,
            sync_requests,
            http_requests,
            connected_devices,
            connected_integrations,
            alerts,
            outbox_records,
            outbox_bytes,
            outbox_oldest_age,
            dead_letters,
        }
    }

    /// One uplink received (an atomic add).
    pub fn uplink(&self, kind: UplinkKind) {
        if let Some(counter) = UplinkKind::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.uplinks.get(i))
        {
            counter.inc();
        }
    }

    /// One engine transaction took `seconds` from begin to commit.
    pub fn engine_batch(&self, seconds: f64) {
        self.engine_batch.observe(seconds);
    }

    /// One sync request on `lane` ended with `outcome` after `seconds`.
    pub fn sync_request(&self, lane: &'static str, outcome: &'static str, seconds: f64) {
        self.sync_requests
            .get_or_create(&SyncLabels { lane, outcome })
            .observe(seconds);
    }

    /// One local API request. `route` is the matched template (`/api/v1/alerts/{id}`), never
    /// the raw path, and `method` one of the few the API knows, so both stay bounded.
    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status: status_class(status),
            })
            .observe(seconds);
    }

    /// What is read at scrape time, then the whole registry as text.
    pub fn render(&self, now: &ScrapeState) -> String {
        for kind in DEVICE_KINDS {
            let n = now
                .connected_by_kind
                .iter()
                .find(|(k, _)| k == kind)
                .map_or(0, |(_, n)| *n);
            self.connected_devices
                .get_or_create(&KindLabel { kind })
                .set(gauge(n));
        }
        self.connected_integrations
            .set(gauge(now.connected_integrations));
        for state in ALERT_STATES {
            let n = now
                .alerts_by_state
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            self.alerts
                .get_or_create(&StateLabel { state })
                .set(gauge(n));
        }
        for lane in &now.lanes {
            let label = LaneLabel { lane: lane.lane };
            self.outbox_records
                .get_or_create(&label)
                .set(gauge(lane.records));
            self.outbox_bytes
                .get_or_create(&label)
                .set(gauge(lane.bytes));
            self.outbox_oldest_age
                .get_or_create(&label)
                .set(lane.oldest_age_s);
        }
        self.dead_letters.set(gauge(now.dead_letters));
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot render the metrics");
        }
        text
    }
}

/// The numbers read when `/metrics` is scraped.
#[derive(Debug, Default)]
pub struct ScrapeState {
    /// Connected devices per kind.
    pub connected_by_kind: Vec<(String, u64)>,
    /// Connected integrations.
    pub connected_integrations: u64,
    /// Alerts per state.
    pub alerts_by_state: Vec<(String, u64)>,
    /// Each lane's backlog.
    pub lanes: Vec<LaneNumbers>,
    /// Dead letters held.
    pub dead_letters: u64,
}

/// One outbox lane's backlog.
#[derive(Debug)]
pub struct LaneNumbers {
    /// `alert` or `telemetry`.
    pub lane: &'static str,
    /// Records waiting.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Age of the oldest, 0 when none.
    pub oldest_age_s: f64,
}

/// `2xx`, `4xx`, …: the status class keeps the label's values few.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_rendered_with_its_labels_and_counts() {
        let metrics = Metrics::new();
        metrics.uplink(UplinkKind::ButtonPress);
        metrics.uplink(UplinkKind::ButtonPress);
        metrics.engine_batch(0.002);
        metrics.sync_request("alert", "acked", 0.01);
        metrics.http_request("/api/v1/alerts/{id}", "GET", 404, 0.001);
        let text = metrics.render(&ScrapeState {
            connected_by_kind: vec![("button".into(), 1)],
            alerts_by_state: vec![("triggered".into(), 3)],
            ..ScrapeState::default()
        });
        for line in [
            "hallwatch_edge_uplinks_received_total{kind=\"button_press\"} 2",
            "hallwatch_edge_uplinks_received_total{kind=\"heartbeat\"} 0",
            "hallwatch_edge_engine_batch_seconds_count 1",
            "hallwatch_edge_sync_request_seconds_count{lane=\"alert\",outcome=\"acked\"} 1",
            "hallwatch_edge_http_request_seconds_count{route=\"/api/v1/alerts/{id}\",method=\"GET\",status=\"4xx\"} 1",
            "hallwatch_edge_connected_devices{kind=\"button\"} 1",
            "hallwatch_edge_connected_devices{kind=\"camera\"} 0",
            "hallwatch_edge_alerts{state=\"triggered\"} 3",
            "hallwatch_edge_alerts{state=\"cancelled\"} 0",
            "hallwatch_edge_dead_letters 0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(304), "3xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
