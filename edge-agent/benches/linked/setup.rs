//! What the benchmarks that run the real cloud beside the gateway share (`sync`, `press_sse`):
//! a fresh database on the server `DATABASE_URL` names (xtask starts one), a gateway enrolled
//! in the cloud, and the latency figures they print.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgPool};

use crate::common::Gateway;
use crate::common::cloud::TestCloud;

/// The runtime a benchmark's `main` blocks on, with rustls' ring provider installed (the one
/// TLS provider of the workspace).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh database on the server `DATABASE_URL` names, dropped by [`Database::drop`].
pub(crate) struct Database {
    server: PgPool,
    name: String,
    pub(crate) opts: PgConnectOptions,
}

impl Database {
    /// Creates `hallwatch_<bench>_bench_<pid>_<n>`.
    pub(crate) async fn create(bench: &str) -> Database {
        let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (cargo xtask bench sets it)");
        let admin: PgConnectOptions = url.parse().unwrap();
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "hallwatch_{bench}_bench_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let server = PgPool::connect_with(admin.clone()).await.unwrap();
        server
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let opts = admin.database(&name);
        Database { server, name, opts }
    }

    pub(crate) async fn drop(self) {
        self.server
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {} WITH (FORCE)",
                self.name
            )))
            .await
            .unwrap();
    }
}

/// A gateway of [`crate::common::SCHOOL`] (whose certificate names `localhost`), enrolled in
/// `cloud` with a fresh token.
pub(crate) fn enrolled_gateway(cloud: &TestCloud) -> Gateway {
    let gw = Gateway::init_local();
    cloud.enroll(&gw, crate::common::SCHOOL);
    gw
}

/// Prints `figure <name>_p50|_p99|_max <value> ms` for `latencies` (milliseconds, any order);
/// nothing when there are none (every one was lost, which the caller reports).
pub(crate) fn print_latencies(name: &str, latencies: &[f64]) {
    if latencies.is_empty() {
        return;
    }
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    for (suffix, p) in [("p50", 0.50), ("p99", 0.99), ("max", 1.0)] {
        println!("figure {name}_{suffix} {:.1} ms", percentile(&sorted, p));
    }
}

/// The `p` quantile (0..=1) of sorted, non-empty values, nearest rank.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
