//! Binding and running the three listeners: the public one (plain HTTP here; TLS for browsers
//! and enrolling gateways is terminated in front of it), the sync listener, which speaks
//! only mutual TLS with gateway certificates, and the metrics listener (`/metrics`,
//! `/healthz`, `/readyz`; plain HTTP, loopback by default).
//!
//! - `public`: the public listener's accept loop (hyper's HTTP/1.1 with `half_close`, so a
//!   live SSE stream keeps an 8 KiB read buffer, not 16; `TCP_NODELAY`; the peer address).
//! - `mtls`: the sync listener's TLS set-up and accept loop, which reads each connection's
//!   client certificate into a [`crate::pki::GatewayIdentity`] request extension.
//! - `connection`: what both accept loops share: the next connection (a failed accept backs
//!   off), and serving one until it ends or the server stops.
//!
//! Under systemd (`hallwatch_service::notify`): `READY=1` once both listeners are served,
//! `STOPPING=1` at shutdown, and the watchdog, which pings only while the pool answers
//! ([`PoolAnswers`]).
//!
//! Background tasks, on every replica: snapshot partitions for the coming months (daily),
//! reloading the access-token signing keys (every 30 s) and gateway liveness (every `Liveness::check_every`: marking silent gateways offline, which
//! `db::liveness` makes safe for several replicas at once).
//!
//! At bind the process raises its soft open-file limit to the hard one: each live stream is a
//! descriptor.
//!
//! Shutdown order: stop accepting, let in-flight requests finish (bounded by
//! [`SHUTDOWN_GRACE`]), then close the pool.

mod connection;
mod mtls;
mod public;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use hallwatch_service::notify::{self, Probe, Watchdog};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState, Listeners, LoginLimiter, RateLimiter};
use crate::auth::{KeyRing, TotpKey};
use crate::config::{Config, Liveness};
use crate::db;
use crate::metrics::Metrics;
use crate::pki::GatewayCa;

/// How long in-flight requests may take to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Snapshot partitions are created this many months ahead, daily.
const PARTITION_MONTHS_AHEAD: i32 = 3;

/// A service with its sockets bound, ready to [`Server::run`].
#[derive(Debug)]
pub struct Server {
    state: AppState,
    public: TcpListener,
    sync: TcpListener,
    metrics: TcpListener,
    tls: Arc<rustls::ServerConfig>,
}

impl Server {
    /// Connects to Postgres (refusing a privileged role), loads or creates the CA, issues
    /// the sync listener's certificate and binds both listeners.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        raise_open_file_limit();
        let pool = db::connect(config.database.clone(), config.pool_size)
            .await
            .context("cannot connect to the database")?;
        db::ensure_unprivileged(&pool).await?;
        db::admin::ensure_snapshot_partitions(&pool, PARTITION_MONTHS_AHEAD).await?;
        let ca = GatewayCa::load_or_create(&config.data_dir)
            .context("cannot load or create the gateway CA")?;
        let keys = KeyRing::load_or_create(&config.data_dir)
            .context("cannot load or create the access-token signing keys")?;
        let totp_key = TotpKey::load_or_create(&config.data_dir)
            .context("cannot load or create the TOTP sealing key")?;
        // The dummy hash unknown users are checked against is made now, so that the first
        // such login does not take longer than the others.
        let hasher = crate::auth::Hasher::default();
        hasher
            .verify(String::new(), None)
            .await
            .context("cannot prepare password checks")?;
        let tls = mtls::server_config(&ca, &config.sync_names)?;
        let public = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let sync = TcpListener::bind(config.sync_listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.sync_listen))?;
        let metrics = TcpListener::bind(config.metrics_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (--metrics-listen)",
                    config.metrics_listen
                )
            })?;
        let state = AppState {
            pool,
            ca: Arc::new(ca),
            limits: config.limits,
            rate: Arc::new(RateLimiter::new(config.rate_per_sec, config.rate_burst)),
            liveness: config.liveness,
            keys: Arc::new(keys),
            login_limits: Arc::new(LoginLimiter::new(
                config.login_limits,
                config.trusted_proxies,
            )),
            hasher: Arc::new(hasher),
            metrics: Arc::new(Metrics::new()),
            listeners: Listeners::bound(),
            realtime: Arc::new(crate::realtime::Hub::new()),
            totp_key: Arc::new(totp_key),
        };
        Ok(Self {
            state,
            public,
            sync,
            metrics,
            tls,
        })
    }

    /// The public listener's address (useful with port 0).
    pub fn public_addr(&self) -> std::io::Result<SocketAddr> {
        self.public.local_addr()
    }

    /// The sync listener's address.
    pub fn sync_addr(&self) -> std::io::Result<SocketAddr> {
        self.sync.local_addr()
    }

    /// The metrics listener's address.
    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics.local_addr()
    }

    /// The gateway CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.state.ca.cert_pem()
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracing::info!(public = ?self.public.local_addr().ok(), sync = ?self.sync.local_addr().ok(), metrics = ?self.metrics.local_addr().ok(), "serving");
        let status = format!(
            "public on {}, sync on {}, metrics on {}",
            local(&self.public),
            local(&self.sync),
            local(&self.metrics)
        );
        let listeners = Arc::clone(&self.state.listeners);

        let public = public::accept_loop(
            self.public,
            api::Routes::public(self.state.clone()),
            cancel.clone(),
            tracker.clone(),
        );
        let served = Arc::clone(&listeners);
        tracker.spawn(async move {
            public.await;
            served.public.store(false, Ordering::Relaxed);
        });
        let sync = mtls::accept_loop(
            self.sync,
            self.tls,
            api::Routes::sync(self.state.clone()),
            cancel.clone(),
            tracker.clone(),
        );
        let served = Arc::clone(&listeners);
        tracker.spawn(async move {
            sync.await;
            served.sync.store(false, Ordering::Relaxed);
        });
        let metrics = api::serve_metrics(
            self.metrics,
            self.state.clone(),
            cancel.clone().cancelled_owned(),
        );
        tracker.spawn(async move {
            if let Err(err) = metrics.await {
                tracing::error!(error = %err, "metrics listener failed");
            }
        });
        tracker
            .spawn(Arc::clone(&self.state.realtime).run(self.state.pool.clone(), cancel.clone()));
        tracker.spawn(partition_upkeep(self.state.pool.clone(), cancel.clone()));
        tracker.spawn(key_reload(self.state.keys.clone(), cancel.clone()));
        tracker.spawn(liveness_watch(
            self.state.pool.clone(),
            self.state.liveness,
            cancel.clone(),
        ));
        if let Some(watchdog) = Watchdog::from_env() {
            tracker.spawn(watchdog.run(PoolAnswers(self.state.pool.clone()), cancel.clone()));
        }
        // The listeners were bound in `bind` and are served from here on.
        notify::ready(&status);

        shutdown.await;
        tracing::info!("shutting down");
        notify::stopping();
        cancel.cancel();
        self.state.realtime.close();
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("requests still running after the grace period; closing anyway");
        }
        self.state.pool.close().await;
        Ok(())
    }
}

/// Every live SSE stream holds a descriptor, and a replica is meant to hold 10,000 of them
/// (`cargo xtask bench realtime`); the default soft limit of 1,024 (systemd's too) would
/// refuse connections long before. The hard limit (524,288 under systemd) is the operator's
/// bound, so no `LimitNOFILE=` is needed in the unit.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
}

/// A listener's address for people.
fn local(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|e| format!("? ({e})"), |addr| addr.to_string())
}

/// Creates the coming months' snapshot partitions once a day.
async fn partition_upkeep(pool: db::Pool, cancel: CancellationToken) {
    let mut daily = tokio::time::interval(Duration::from_secs(24 * 3600));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = daily.tick() => {}
        }
        if let Err(err) = db::admin::ensure_snapshot_partitions(&pool, PARTITION_MONTHS_AHEAD).await
        {
            tracing::error!(error = %err, "cannot create snapshot partitions");
        }
    }
}

/// Reads the signing-key directory again every `KeyRing::RELOAD_EVERY`, so an added key
/// signs and a removed one stops verifying without a restart.
async fn key_reload(keys: Arc<KeyRing>, cancel: CancellationToken) {
    let mut every = tokio::time::interval(KeyRing::RELOAD_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        let keys = keys.clone();
        match tokio::task::spawn_blocking(move || keys.reload()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "cannot reload the signing keys"),
            Err(err) => tracing::error!(error = %err, "signing-key reload panicked"),
        }
    }
}

/// Marks gateways that fell silent offline, every `check_every`.
async fn liveness_watch(pool: db::Pool, liveness: Liveness, cancel: CancellationToken) {
    // A zero period would make `interval` panic.
    let mut every = tokio::time::interval(liveness.check_every.max(Duration::from_millis(10)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        match db::liveness::mark_silent(&pool, &liveness).await {
            Ok(marked) => {
                for (school, gateway) in marked {
                    tracing::warn!(%school, %gateway, "gateway offline: no sync for {:?}", liveness.offline_after);
                }
            }
            Err(err) => tracing::error!(error = %err, "cannot check gateway liveness"),
        }
    }
}

/// What the watchdog proves on the cloud: every quarter of `WatchdogSec` a connection from the
/// service's own pool runs `SELECT 1`, bounded by that quarter. Every request the service
/// serves needs the pool, so a pool that hands out no connection (Postgres gone, connections
/// wedged) for a whole `WatchdogSec` means a service that serves nothing, and systemd restarts
/// it; a restart that cannot connect exits, and `Restart=` keeps trying.
#[derive(Debug)]
pub(crate) struct PoolAnswers(db::Pool);

impl Probe for PoolAnswers {
    fn withheld(&self, why: &str, period: Duration) {
        tracing::error!(
            error = why,
            watchdog = ?period,
            "the database pool does not answer; withholding the watchdog ping (systemd \
             restarts the service if it stays so)"
        );
    }

    fn resumed(&self) {
        tracing::warn!("the database answers again; watchdog pings resume");
    }

    async fn check(&mut self, period: Duration) -> Result<(), String> {
        let quarter = period / 4;
        match tokio::time::timeout(quarter, db::ping(&self.0)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {quarter:?}")),
        }
    }
}
