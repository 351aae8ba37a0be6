//! `cargo xtask bench ingest`: 100 gateways merging 1,000-record batches concurrently through
//! the real mTLS endpoint into Postgres (`DATABASE_URL`, a superuser; xtask starts one).
//! Prints `figure` lines: records/s, per-batch p50/p99, replay latency and the writes and dead
//! tuples a full replay leaves.

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

    let (fresh_secs, mut fresh) = send_all(&gateways, &batches).await;
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

    let before = writes(&cloud.owner).await;
    let (_, mut replay) = send_all(&gateways, &batches).await;
    let after = writes(&cloud.owner).await;
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
        after.0 - before.0
    );
    println!(
        "figure ingest_replay_dead_tuples_added {} tuples",
        after.1 - before.1
    );
    cloud.stop().await;
}

/// Every gateway sends its batches in order, all gateways at once. Wall time and each
/// batch's latency in ms.
async fn send_all(
    gateways: &[std::sync::Arc<common::Gateway>],
    batches: &[Vec<Vec<u8>>],
) -> (f64, Vec<f64>) {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (gw, bodies) in gateways.iter().zip(batches) {
        let gw = gw.clone();
        let bodies = bodies.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            for body in bodies {
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

/// (rows inserted + updated + deleted, dead tuples) over the user tables, once the
/// statistics have been flushed.
async fn writes(pool: &PgPool) -> (i64, i64) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sqlx::query_as(
        "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint, \
                coalesce(sum(n_dead_tup), 0)::bigint FROM pg_stat_user_tables",
    )
    .fetch_one(pool)
    .await
    .expect("stats")
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index.min(values.len() - 1)]
}
