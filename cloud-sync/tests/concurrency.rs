//! Many gateways at once, both lanes of each at once: every gateway's records arrive
//! complete and in order, lane by lane.

mod common;

use std::sync::Arc;

use common::records::{alert_events, snapshot};
use common::{Gateway, TestCloud};
use shared::ids::Seq;
use shared::sync::{Lane, Record};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const GATEWAYS: usize = 50;
const BATCHES: u64 = 8;
const PER_BATCH: u64 = 25;

/// Alert events in the alert lane, snapshots in the telemetry lane: one row per seq.
fn records(gw: &Gateway, lane: Lane, first: u64, last: u64) -> Vec<Record> {
    match lane {
        Lane::Alert => alert_events(first, last),
        Lane::Telemetry => (first..=last)
            .map(|seq| snapshot(seq, &gw.school_id))
            .collect(),
    }
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn fifty_gateways_in_parallel_keep_their_records_complete_and_ordered(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let mut gateways = Vec::new();
    for n in 0..GATEWAYS {
        gateways.push(Arc::new(cloud.enrolled(&format!("school-{n:02}")).await));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for gw in gateways {
        for lane in [Lane::Alert, Lane::Telemetry] {
            let gw = gw.clone();
            tasks.spawn(async move {
                for b in 0..BATCHES {
                    let (first, last) = (b * PER_BATCH + 1, (b + 1) * PER_BATCH);
                    let batch = gw.batch(lane, records(&gw, lane, first, last));
                    assert_eq!(gw.send(&batch).await.unwrap().acked_through, Seq::new(last));
                    // Every other batch is also replayed, as after a lost ack.
                    if b % 2 == 1 {
                        assert_eq!(gw.send(&batch).await.unwrap().acked_through, Seq::new(last));
                    }
                }
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    let total = i64::try_from(BATCHES * PER_BATCH).unwrap();
    for table in ["alert_events", "snapshots"] {
        let per_school: Vec<(String, i64, i64, i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT school_id, count(*), count(DISTINCT seq), min(seq), max(seq) \
                 FROM {table} GROUP BY school_id ORDER BY 1"
            )))
            .fetch_all(&cloud.owner)
            .await
            .unwrap();
        assert_eq!(per_school.len(), GATEWAYS, "{table}");
        for (school, rows, distinct, min, max) in per_school {
            assert_eq!(
                (rows, distinct, min, max),
                (total, total, 1, total),
                "{table} of {school}"
            );
        }
    }
    let cursors: Vec<(i64, i64)> =
        sqlx::query_as("SELECT last_seq, count(*) FROM sync_cursors GROUP BY last_seq")
            .fetch_all(&cloud.owner)
            .await
            .unwrap();
    assert_eq!(cursors, [(total, i64::try_from(2 * GATEWAYS).unwrap())]);
    cloud.stop().await;
}
