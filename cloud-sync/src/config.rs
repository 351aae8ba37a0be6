//! [`Config`]: everything `serve` needs, validated by `main` before any socket is bound.

use std::net::SocketAddr;
use std::path::PathBuf;

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
}
