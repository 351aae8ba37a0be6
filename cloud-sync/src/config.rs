//! [`Config`]: everything `serve` needs, validated by `main` before any socket is bound.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use shared::sync::Limits;

/// The service's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How to reach Postgres, as the application role.
    pub database: crate::db::ConnectOptions,
    /// Connections in the pool.
    pub pool_size: u32,
    /// Where the gateway CA lives (created on first start).
    pub data_dir: PathBuf,
    /// The public listener (enrollment; the dashboards later).
    pub listen: SocketAddr,
    /// The mTLS listener for gateway sync.
    pub sync_listen: SocketAddr,
    /// `/metrics`, `/healthz` and `/readyz`, plain HTTP (loopback by default: the numbers
    /// are not for the public listener).
    pub metrics_listen: SocketAddr,
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
    /// How many login attempts an account and a source address may make.
    pub login_limits: LoginLimits,
    /// Proxies in front of the public listener whose `X-Forwarded-For` is believed: for a
    /// connection from one of them, a login's source is the address that proxy forwarded
    /// for. Empty: the source is the connection's peer.
    pub trusted_proxies: Vec<IpAddr>,
}

/// A token bucket: `burst` attempts at once, then one more every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Attempts at once (at least one).
    pub burst: u32,
    /// Time that earns one more attempt.
    pub every: Duration,
}

/// Login attempts allowed per account (the e-mail address given, known or not) and per
/// source address (IPv6 grouped by /64, since one host commonly holds a whole /64). Each
/// replica counts its own attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Per e-mail address: guessing one account's password.
    pub per_account: Quota,
    /// Per source address: trying many accounts from one place.
    pub per_source: Quota,
}

impl Default for LoginLimits {
    /// Per account: 5 at once, then one a minute (1,440 a day: hopeless against a
    /// 12-character password, and a user who mistypes five times waits a minute). Per
    /// source: 30 at once, then one every 2 s (a school's staff logging in behind one NAT
    /// at the start of the day gets through in a few minutes).
    fn default() -> Self {
        Self {
            per_account: Quota {
                burst: 5,
                every: Duration::from_secs(60),
            },
            per_source: Quota {
                burst: 30,
                every: Duration::from_secs(2),
            },
        }
    }
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
