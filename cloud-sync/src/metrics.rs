//! The service's Prometheus metrics: one [`Metrics`] per [`crate::Server`], rendered as the
//! OpenMetrics text format on the metrics listener (`--metrics-listen`, loopback by default:
//! the public listener is public, and the numbers are not for everyone).
//!
//! **Counted where it happens**: HTTP requests (a histogram by listener, route template,
//! method and status class — one short uncontended lock per request), sync batches and the
//! records they merged (atomic adds on counters resolved once, never a label lookup on the
//! ingest path), SSE connections (a gauge the stream's handler holds a [`SseConnection`] of).
//! **Read when scraped**: the Postgres pool (size, idle, in use) and gateways online/offline
//! (one query), so they cost nothing between scrapes.
//!
//! Every label has a small fixed set of values, so the number of series is bounded whatever
//! gateways or clients send.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use shared::sync::Lane;

use crate::db::liveness::GatewayCounts;

/// The media type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = shared::metrics_text::OPENMETRICS_CONTENT_TYPE;

/// How a sync batch ended, as counted by `hallwatch_cloud_sync_batches_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Merged and acknowledged (heartbeats and replays too).
    Acked,
    /// Refused with 409: it does not continue the cursor.
    Gap,
    /// Refused before the merge (400, 403, 413, 429) or failed.
    Refused,
}

impl BatchOutcome {
    const ALL: [BatchOutcome; 3] = [
        BatchOutcome::Acked,
        BatchOutcome::Gap,
        BatchOutcome::Refused,
    ];

    fn as_str(self) -> &'static str {
        match self {
            BatchOutcome::Acked => "acked",
            BatchOutcome::Gap => "gap",
            BatchOutcome::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BatchLabels {
    lane: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabel {
    lane: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    listener: &'static str,
    route: String,
    method: &'static str,
    status: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The service's series and the registry that renders them. Shared as `Arc<Metrics>`.
pub struct Metrics {
    registry: Registry,
    /// By lane (`Lane::ALL` order), then outcome (`BatchOutcome::ALL` order).
    batches: Vec<Counter>,
    /// New records merged, by lane.
    records: Vec<Counter>,
    http_requests: HistogramFamily<HttpLabels>,
    sse: Gauge,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_in_use: Gauge,
    gateways: Family<StateLabel, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Latency buckets from 0.5 ms to about 16 s, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    /// Every series registered, at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hallwatch_cloud");
        let batch_family = Family::<BatchLabels, Counter>::default();
        let record_family = Family::<LaneLabel, Counter>::default();
        let mut batches = Vec::new();
        let mut records = Vec::new();
        for lane in Lane::ALL {
            let lane = lane.as_str();
            for outcome in BatchOutcome::ALL {
                batches.push(batch_family.get_or_create_owned(&BatchLabels {
                    lane,
                    outcome: outcome.as_str(),
                }));
            }
            records.push(record_family.get_or_create_owned(&LaneLabel { lane }));
        }
        registry.register(
            "sync_batches",
            "Sync batches received from gateways, by lane and outcome",
            batch_family,
        );
        registry.register(
            "sync_records_ingested",
            "New records merged from sync batches (replays not counted), by lane",
            record_family,
        );
        let http_requests: HistogramFamily<HttpLabels> = Family::new_with_constructor(latency);
        registry.register_with_unit(
            "http_request",
            "HTTP requests by listener, route template, method and status class",
            Unit::Seconds,
            http_requests.clone(),
        );
        let sse = Gauge::default();
        registry.register(
            "sse_connections",
            "Server-sent event streams open now",
            sse.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Postgres connections the pool holds (idle and in use)",
            pool_size.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "Postgres connections idle in the pool",
            pool_idle.clone(),
        );
        let pool_in_use = Gauge::default();
        registry.register(
            "db_pool_in_use_connections",
            "Postgres connections lent out by the pool",
            pool_in_use.clone(),
        );
        let gateways = Family::<StateLabel, Gauge>::default();
        registry.register(
            "gateways",
            "Enrolled gateways (not revoked) by liveness: online, offline, never_synced",
            gateways.clone(),
        );
        Metrics {
            registry,
            batches,
            records,
            http_requests,
            sse,
            pool_size,
            pool_idle,
            pool_in_use,
            gateways,
        }
    }

    /// One sync batch on `lane` ended with `outcome`, having merged `new_records` (atomic adds).
    pub fn sync_batch(&self, lane: Lane, outcome: BatchOutcome, new_records: u64) {
        let lane_index = Lane::ALL.iter().position(|l| *l == lane).unwrap_or(0);
        let outcome_index = BatchOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        if let Some(counter) = self
            .batches
            .get(lane_index * BatchOutcome::ALL.len() + outcome_index)
        {
            counter.inc();
        }
        if new_records > 0
            && let Some(counter) = self.records.get(lane_index)
        {
            counter.inc_by(new_records);
        }
    }

    /// One HTTP request on `listener`. `route` is the matched template, never the raw path.
    pub fn http_request(
        &self,
        listener: &'static str,
        route: &str,
        method: &'static str,
        status: u16,
        seconds: f64,
    ) {
        self.http_requests
            .get_or_create(&HttpLabels {
                listener,
                route: route.to_owned(),
                method,
                status: status_class(status),
            })
            .observe(seconds);
    }

    /// Counts an SSE stream as open for as long as the returned guard lives: hold it in the
    /// stream (dropped when the client goes away or the server stops).
    pub fn sse_connection(&self) -> SseConnection {
        self.sse.inc();
        SseConnection {
            gauge: self.sse.clone(),
        }
    }

    /// SSE streams open now.
    pub fn sse_connections(&self) -> i64 {
        self.sse.get()
    }

    /// The scrape-time numbers set, then the whole registry as text.
    pub fn render(&self, pool: &PoolNumbers, gateways: Option<GatewayCounts>) -> String {
        self.pool_size.set(i64::from(pool.size));
        self.pool_idle.set(gauge(pool.idle));
        self.pool_in_use
            .set(i64::from(pool.size).saturating_sub(gauge(pool.idle)).max(0));
        // Unknown when the database did not answer: the series keep their last values rather
        // than claim every gateway offline.
        if let Some(counts) = gateways {
            for (state, n) in [
                ("online", counts.online),
                ("offline", counts.offline),
                ("never_synced", counts.never_synced),
            ] {
                self.gateways
                    .get_or_create(&StateLabel { state })
                    .set(gauge(n));
            }
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "cannot render the metrics");
        }
        text
    }
}

/// The pool as `db::Pool` reports it.
#[derive(Debug, Clone, Copy)]
pub struct PoolNumbers {
    /// Connections held.
    pub size: u32,
    /// Of which idle.
    pub idle: u64,
}

/// One open SSE stream, counted in `hallwatch_cloud_sse_connections` until dropped.
#[derive(Debug)]
pub struct SseConnection {
    gauge: Gauge,
}

impl Drop for SseConnection {
    fn drop(&mut self) {
        self.gauge.dec();
    }
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
    fn counters_gauges_and_the_sse_guard_render() {
        let metrics = Metrics::new();
        metrics.sync_batch(Lane::Telemetry, BatchOutcome::Acked, 5);
        metrics.sync_batch(Lane::Alert, BatchOutcome::Gap, 0);
        let one = metrics.sse_connection();
        let two = metrics.sse_connection();
        drop(one);
        metrics.http_request("public", "/api/v1/me", "GET", 401, 0.003);
        let text = metrics.render(
            &PoolNumbers { size: 4, idle: 3 },
            Some(GatewayCounts {
                online: 2,
                offline: 1,
                never_synced: 0,
            }),
        );
        for line in [
            "hallwatch_cloud_sync_batches_total{lane=\"telemetry\",outcome=\"acked\"} 1",
            "hallwatch_cloud_sync_batches_total{lane=\"alert\",outcome=\"gap\"} 1",
            "hallwatch_cloud_sync_batches_total{lane=\"alert\",outcome=\"acked\"} 0",
            "hallwatch_cloud_sync_records_ingested_total{lane=\"telemetry\"} 5",
            "hallwatch_cloud_sse_connections 1",
            "hallwatch_cloud_db_pool_connections 4",
            "hallwatch_cloud_db_pool_idle_connections 3",
            "hallwatch_cloud_db_pool_in_use_connections 1",
            "hallwatch_cloud_gateways{state=\"online\"} 2",
            "hallwatch_cloud_gateways{state=\"offline\"} 1",
            "hallwatch_cloud_http_request_seconds_count{listener=\"public\",route=\"/api/v1/me\",method=\"GET\",status=\"4xx\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        drop(two);
        assert_eq!(metrics.sse_connections(), 0);
    }
}
