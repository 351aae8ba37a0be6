//! [`Config`]: everything `serve` needs, validated by `main` before any socket is bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shared::sync::Limits;
use sqlx::postgres::PgConnectOptions;

/// The service's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How to reach Postgres, as the application role.
    pub database: PgConnectOptions,
    /// Connections in the pool.
    pub pool_size: u32,
    /// Where the gateway CA lives (created on first start).
    pub data_dir: PathBuf,
    /// The public listener (enrollment; the dashboards later).
    pub listen: SocketAddr,
    /// The mTLS listener for gateway sync.
    pub sync_listen: SocketAddr,
    /// DNS names and IP addresses in the sync listener's certificate.
    pub sync_names: Vec<String>,
    /// Bounds on sync bodies.
    pub limits: Limits,
    /// Sync requests per second a gateway may make on average.
    pub rate_per_sec: f64,
    /// Sync requests a gateway may make at once.
    pub rate_burst: u32,
    /// When a gateway counts as offline, and how often that is checked.
    pub liveness: Liveness,
}

/// Gateway liveness: a gateway that has synced at least once and then stays silent for
/// `offline_after` is marked offline (an event and a notification); its next sync marks it
/// online again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Silence after which a gateway is offline (gateways sync at least every 30 s).
    pub offline_after: Duration,
    /// How often a gateway's `last_sync_at` is written at most: syncs in between only read
    /// it, so heartbeats and replays do not churn the row.
    pub record_every: Duration,
    /// How often the service looks for gateways that fell silent.
    pub check_every: Duration,
}

impl Liveness {
    /// The default silence before a gateway is offline: three missed 30-s heartbeats.
    pub const DEFAULT_OFFLINE_AFTER: Duration = Duration::from_secs(90);

    /// Settings for `offline_after`: `last_sync_at` is written at most every 10 s and silence
    /// is looked for every 5 s, both shortened to a third of `offline_after` when it is short
    /// (tests), so the marking is never more than two thirds of `offline_after` late.
    pub fn new(offline_after: Duration) -> Self {
        let third = offline_after / 3;
        Self {
            offline_after,
            record_every: third.min(Duration::from_secs(10)),
            check_every: third.min(Duration::from_secs(5)),
        }
    }
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new(Self::DEFAULT_OFFLINE_AFTER)
    }
}
