//! The cloud's probes and logs: `/readyz` on the public and metrics listeners, 503 naming
//! Postgres while the database refuses connections; `/metrics` only on the metrics listener;
//! the real `cloud-sync serve` logging JSON lines (its stderr is a file, not a terminal) whose
//! request id is the one its answer carried. The metrics' series after a real sync are
//! scraped in edge-agent's `tests/observability.rs`, with a real gateway.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestCloud;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    common::install_crypto();
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn readyz(addr: SocketAddr) -> (u16, Value) {
    let (status, body) = get(addr, "/readyz").await;
    (status, serde_json::from_str(&body).unwrap())
}

/// `ALTER DATABASE … ALLOW_CONNECTIONS`, as the cluster's superuser from `postgres`.
async fn allow_connections(owner: &sqlx::PgPool, db: &str, allow: bool) {
    assert!(
        db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{db}"
    );
    let sql = format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS {allow}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(owner)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn readyz_names_postgres_while_it_refuses_connections(
    owner: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    for addr in [cloud.public, cloud.metrics] {
        let (status, body) = readyz(addr).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ready");
        for check in ["postgres", "public_listener", "sync_listener"] {
            assert_eq!(body["checks"][check], "ok", "{body}");
        }
        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));
    }
    // The numbers are for the metrics listener only.
    assert_eq!(get(cloud.public, "/metrics").await.0, 404);
    let (status, text) = get(cloud.metrics, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("hallwatch_cloud_db_pool_connections "),
        "{text}"
    );

    let db = opts.get_database().unwrap().to_owned();
    let superuser = owner
        .max_connections(1)
        .connect_with(opts.clone().database("postgres"))
        .await
        .unwrap();
    allow_connections(&superuser, &db, false).await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND usename = $2",
    )
    .bind(&db)
    .bind(cloud_sync::db::APP_ROLE)
    .execute(&superuser)
    .await
    .unwrap();
    // Within the check's own bound (2 s) plus a moment; alive all along.
    let start = Instant::now();
    let (status, body) = readyz(cloud.metrics).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(body["status"], "not ready");
    let postgres = body["checks"]["postgres"].as_str().unwrap();
    assert!(postgres.contains("Postgres"), "{body}");
    assert_eq!(body["checks"]["sync_listener"], "ok", "{body}");
    assert_eq!(readyz(cloud.public).await.0, 503);
    assert_eq!(get(cloud.metrics, "/healthz").await.0, 200);
    // The scrape still answers, with the pool's numbers (the gateway count is left as it was).
    assert_eq!(get(cloud.metrics, "/metrics").await.0, 200);

    allow_connections(&superuser, &db, true).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while readyz(cloud.metrics).await.0 != 200 {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cloud.stop().await;
}

/// Kills the child when dropped, also when the test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn serve_logs_json_lines_with_the_request_id_it_answers(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("serve.log");
    let (public, sync, metrics) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let url = format!(
        "postgres://{}@{}:{}/{}",
        cloud_sync::db::APP_ROLE,
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap()
    );
    let _child = Killed(
        Command::new(env!("CARGO_BIN_EXE_cloud-sync"))
            .args(["serve", "--database-url", &url, "--data-dir"])
            .arg(data.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{public}")])
            .args(["--sync-listen", &format!("127.0.0.1:{sync}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "cloud_sync=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let public: SocketAddr = ([127, 0, 0, 1], public).into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(public).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "serve did not listen:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    common::install_crypto();
    let client = reqwest::Client::new();
    let me = |id: Option<&str>| {
        let mut request = client.get(format!("http://{public}/api/v1/me"));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    // No token: 401, logged at info with the caller's id, echoed.
    let response = me(Some("support-ticket-7")).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["x-request-id"], "support-ticket-7");
    // An id with a space in it is not taken: a new one (a UUID) instead.
    let response = me(Some("two words")).await.unwrap();
    let made = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(made.len(), 36, "{made}");
    let (status, _) = get(([127, 0, 0, 1], metrics).into(), "/metrics").await;
    assert_eq!(status, 200);

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let line = |id: &str| {
            lines
                .iter()
                .find(|l| l["span"]["id"] == id && l["fields"]["message"] == "request done")
                .cloned()
        };
        if let (Some(first), Some(second)) = (line("support-ticket-7"), line(&made)) {
            for l in [&first, &second] {
                assert_eq!(l["level"], "INFO", "{l}");
                assert_eq!(l["span"]["name"], "request", "{l}");
                assert_eq!(l["span"]["listener"], "public", "{l}");
                assert_eq!(l["span"]["route"], "/api/v1/me", "{l}");
                assert_eq!(l["fields"]["status"], 401, "{l}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "request lines missing:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
