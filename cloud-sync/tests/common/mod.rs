//! Shared test helpers: pools as the application role, a running cloud on port 0 with real
//! TLS, and a gateway client that does what `edge-agent enroll` and its sync loop do.

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub(crate) mod estate;
pub(crate) mod gateway;
pub(crate) mod people;
pub(crate) mod records;
pub(crate) mod sse;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cloud_sync::{Config, Liveness, LoginLimits, Server, db};
use shared::sync::Limits;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[allow(unused_imports)] // Not every test binary uses every helper.
pub(crate) use gateway::{Gateway, enroll, enroll_raw};

/// A loopback port nothing listens on right now (for a process that binds it itself).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// A pool connected as the service's role (the test cluster trusts local connections).
pub(crate) async fn app_pool(opts: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(20)
        .connect_with(opts.clone().username(db::APP_ROLE))
        .await
        .expect("connect as the application role")
}

/// Installs ring as the process's TLS provider (once; later calls are no-ops).
pub(crate) fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A running `cloud-sync` with one region, and the owner's pool to look at the database.
pub(crate) struct TestCloud {
    pub(crate) owner: PgPool,
    pub(crate) public: SocketAddr,
    pub(crate) sync: SocketAddr,
    /// The metrics listener (`/metrics`, `/healthz`, `/readyz`).
    pub(crate) metrics: SocketAddr,
    pub(crate) ca_pem: String,
    pub(crate) data_dir: PathBuf,
    opts: PgConnectOptions,
    options: Options,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Knobs a test may turn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) limits: Limits,
    pub(crate) rate_per_sec: f64,
    pub(crate) rate_burst: u32,
    pub(crate) liveness: Liveness,
    pub(crate) login_limits: LoginLimits,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: Limits::DEFAULT,
            rate_per_sec: 1000.0,
            rate_burst: 1000,
            liveness: Liveness::default(),
            login_limits: LoginLimits::default(),
        }
    }
}

impl TestCloud {
    pub(crate) async fn start(opts: &PgConnectOptions) -> Self {
        Self::start_with(opts, Options::default()).await
    }

    pub(crate) async fn start_with(opts: &PgConnectOptions, options: Options) -> Self {
        install_crypto();
        let owner = PgPool::connect_with(opts.clone())
            .await
            .expect("connect as owner");
        db::admin::create_region(&owner, &"north".parse().expect("id"), "North")
            .await
            .expect("create region");
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let data_dir = std::env::temp_dir().join(format!(
            "hallwatch-cloud-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let (server, stop, task) = serve(opts, options, &data_dir).await;
        Self {
            owner,
            public: server.0,
            sync: server.1,
            metrics: server.2,
            ca_pem: server.3,
            data_dir,
            opts: opts.clone(),
            options,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Another replica of the service on the same database and data directory (so the same
    /// CA and signing keys), on ports of its own.
    pub(crate) async fn replica(&self) -> Replica {
        let (server, stop, task) = serve(&self.opts, self.options, &self.data_dir).await;
        Replica {
            public: server.0,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Creates a school and returns its one-time token.
    pub(crate) async fn school(&self, id: &str) -> String {
        self.school_with_ttl(id, Duration::from_secs(86_400)).await
    }

    pub(crate) async fn school_with_ttl(&self, id: &str, ttl: Duration) -> String {
        let token = db::admin::create_school(
            &self.owner,
            &"north".parse().expect("id"),
            &id.parse().expect("school id"),
            id,
            ttl,
        )
        .await
        .expect("create school");
        token.as_str().to_owned()
    }

    /// A school with an enrolled gateway.
    pub(crate) async fn enrolled(&self, school: &str) -> Gateway {
        let token = self.school(school).await;
        enroll(self, &token).await.expect("enrollment succeeds")
    }

    pub(crate) fn enroll_url(&self) -> String {
        format!("http://{}/api/v1/enroll", self.public)
    }

    pub(crate) fn sync_url(&self) -> String {
        format!("https://localhost:{}/api/v1/sync", self.sync.port())
    }

    /// Rows of `sql` (a `SELECT count(*) ...`) as the owner.
    pub(crate) async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.owner)
            .await
            .expect("count query")
    }

    /// Stops the server and waits for it to drain.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("cloud task");
        }
    }
}

impl Drop for TestCloud {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A second replica of a [`TestCloud`] (see [`TestCloud::replica`]).
pub(crate) struct Replica {
    pub(crate) public: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Replica {
    /// `http://host:port` of its public listener.
    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.public)
    }

    /// Stops it and waits for it to drain.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("replica task");
        }
    }
}

/// Binds and runs a service: its public, sync and metrics addresses and CA, the stop sender,
/// the task.
async fn serve(
    opts: &PgConnectOptions,
    options: Options,
    data_dir: &std::path::Path,
) -> (
    (SocketAddr, SocketAddr, SocketAddr, String),
    oneshot::Sender<()>,
    JoinHandle<()>,
) {
    let config = Config {
        database: opts.clone().username(db::APP_ROLE),
        pool_size: 60,
        data_dir: data_dir.to_owned(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        sync_listen: "127.0.0.1:0".parse().expect("addr"),
        metrics_listen: "127.0.0.1:0".parse().expect("addr"),
        sync_names: vec!["localhost".to_owned()],
        limits: options.limits,
        rate_per_sec: options.rate_per_sec,
        rate_burst: options.rate_burst,
        liveness: options.liveness,
        login_limits: options.login_limits,
        trusted_proxies: Vec::new(),
    };
    let server = Server::bind(config).await.expect("bind the cloud");
    let public = server.public_addr().expect("addr");
    let sync = server.sync_addr().expect("addr");
    let metrics = server.metrics_addr().expect("addr");
    let ca_pem = server.ca_pem().to_owned();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = stopped.await;
            })
            .await
            .expect("cloud ran");
    });
    ((public, sync, metrics, ca_pem), stop, task)
}
