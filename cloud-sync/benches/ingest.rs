//! `cargo xtask bench ingest`: 100 gateways merging 1,000-record batches concurrently through
//! the real mTLS endpoint into Postgres (`DATABASE_URL`, a superuser; xtask starts one).
//!
//! - **Saturated:** every gateway sends its 5 batches back to back, all at once: the most
//!   records/s the cloud merges, and the latency of a batch in that queue.
//! - **Paced:** every gateway sends 5 more batches, one a second, the gateways spread over the
//!   second: 100,000 records/s offered, the load the issue names; the latency of one batch
//!   when the cloud keeps up.
//! - **Replay:** the first 5 batches of every gateway again (all duplicates): latency, and the
//!   rows written and dead tuples left per table, read from `pg_stat_user_tables` after the
//!   statistics of idle backends are flushed (they flush at most every 10 s when idle).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::records::telemetry;
use common::{Options, TestCloud};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Executor, PgPool};

const GATEWAYS: usize = 100;
const BATCHES: u64 = 5;
const PER_BATCH: u64 = 1000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (cargo xtask bench starts one)");
    let admin: PgConnectOptions = url.parse().expect("DATABASE_URL");
    let name = format!("hallwatch_bench_{}", std::process::id());
    let server = PgPool::connect_with(admin.clone()).await.expect("connect");
    server
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create database");
    let opts = admin.clone().database(&name);
    {
        let owner = PgPool::connect_with(opts.clone()).await.expect("connect");
        cloud_sync::MIGRATOR.run(&owner).await.expect("migrate");
        owner.close().await;
    }
    measure(&opts).await;
    server
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await
        .expect("drop database");
}

async fn measure(opts: &PgConnectOptions) {
    let options = Options {
        rate_per_sec: 1e6,
        rate_burst: 1_000_000,
        ..Options::default()
    };
    let cloud = TestCloud::start_with(opts, options).await;
    let mut gateways = Vec::new();
    for n in 0..GATEWAYS {
        gateways.push(std::sync::Arc::new(
            cloud.enrolled(&format!("school-{n:03}")).await,
        ));
    }
    let batches: Vec<Vec<Vec<u8>>> = gateways
        .iter()
        .map(|gw| {
            (0..BATCHES)
                .map(|b| {
                    let records = telemetry(b * PER_BATCH + 1, (b + 1) * PER_BATCH, &gw.school_id);
                    shared::sync::encode_batch(&gw.telemetry(records)).expect("encode")
                })
                .collect()
        })
        .collect();

    let paced: Vec<Vec<Vec<u8>>> = gateways
        .iter()
        .map(|gw| {
            (BATCHES..2 * BATCHES)
                .map(|b| {
                    let records = telemetry(b * PER_BATCH + 1, (b + 1) * PER_BATCH, &gw.school_id);
                    shared::sync::encode_batch(&gw.telemetry(records)).expect("encode")
                })
                .collect()
        })
        .collect();

    let (fresh_secs, mut fresh) = send_all(&gateways, &batches, None).await;
    let records = (GATEWAYS as f64) * (BATCHES * PER_BATCH) as f64;
    println!(
        "figure ingest_fresh_records_per_s {:.0} records/s",
        records / fresh_secs
    );
    println!(
        "figure ingest_fresh_batch_p50 {:.1} ms",
        percentile(&mut fresh, 0.50)
    );
    println!(
        "figure ingest_fresh_batch_p99 {:.1} ms",
        percentile(&mut fresh, 0.99)
    );

    let (paced_secs, mut paced) = send_all(&gateways, &paced, Some(Duration::from_secs(1))).await;
    println!(
        "figure ingest_paced_records_per_s {:.0} records/s",
        records / paced_secs
    );
    println!(
        "figure ingest_paced_batch_p50 {:.1} ms",
        percentile(&mut paced, 0.50)
    );
    println!(
        "figure ingest_paced_batch_p99 {:.1} ms",
        percentile(&mut paced, 0.99)
    );

    let before = writes(&cloud.owner).await;
    let (_, mut replay) = send_all(&gateways, &batches, None).await;
    let after = writes(&cloud.owner).await;
    for (table, (w_after, d_after)) in &after.tables {
        let (w_before, d_before) = before.tables.get(table).copied().unwrap_or((0, 0));
        if w_after != &w_before || d_after != &d_before {
            println!(
                "ingest replay: {table}: {} rows written, {} dead tuples added",
                w_after - w_before,
                d_after - d_before
            );
        }
    }
    println!(
        "figure ingest_replay_batch_p50 {:.1} ms",
        percentile(&mut replay, 0.50)
    );
    println!(
        "figure ingest_replay_batch_p99 {:.1} ms",
        percentile(&mut replay, 0.99)
    );
    println!(
        "figure ingest_replay_rows_written {} rows",
        after.written - before.written
    );
    println!(
        "figure ingest_replay_dead_tuples_added {} tuples",
        after.dead - before.dead
    );
    cloud.stop().await;
}

/// Every gateway sends its batches in order, all gateways at once; with `every`, gateway `n`
/// of `N` starts `n/N` of that period late and sends one batch per period. Wall time and
/// each batch's latency in ms.
async fn send_all(
    gateways: &[std::sync::Arc<common::Gateway>],
    batches: &[Vec<Vec<u8>>],
    every: Option<Duration>,
) -> (f64, Vec<f64>) {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let count = gateways.len() as u32;
    for (n, (gw, bodies)) in gateways.iter().zip(batches).enumerate() {
        let gw = gw.clone();
        let bodies = bodies.clone();
        let n = n as u32;
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            for (i, body) in bodies.into_iter().enumerate() {
                if let Some(every) = every {
                    let due = start + every * i as u32 + every * n / count;
                    tokio::time::sleep_until(due.into()).await;
                }
                let t = Instant::now();
                gw.send_bytes(body).await.expect("batch accepted");
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("gateway task"));
    }
    (start.elapsed().as_secs_f64(), all)
}

/// Rows inserted + updated + deleted and dead tuples, per user table and in all.
struct Writes {
    tables: std::collections::BTreeMap<String, (i64, i64)>,
    written: i64,
    dead: i64,
}

/// The write statistics, once every idle backend has flushed its own (PostgreSQL 15 flushes
/// an idle backend's statistics within 10 s).
async fn writes(pool: &PgPool) -> Writes {
    tokio::time::sleep(Duration::from_secs(11)).await;
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT relname::text, (n_tup_ins + n_tup_upd + n_tup_del)::bigint, \
                n_dead_tup::bigint FROM pg_stat_user_tables",
    )
    .fetch_all(pool)
    .await
    .expect("stats");
    Writes {
        written: rows.iter().map(|r| r.1).sum(),
        dead: rows.iter().map(|r| r.2).sum(),
        tables: rows.into_iter().map(|(t, w, d)| (t, (w, d))).collect(),
    }
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index.min(values.len() - 1)]
}
