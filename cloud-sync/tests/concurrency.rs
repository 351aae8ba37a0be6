//! Many gateways at once: every gateway's records arrive complete and in order.

mod common;

use common::records::{alert_event, snapshot};
use common::{Gateway, TestCloud};
use shared::alert::AlertState;
use shared::ids::{AlertId, Seq};
use shared::sync::Record;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const GATEWAYS: usize = 50;
const BATCHES: u64 = 8;
const PER_BATCH: u64 = 25;

/// Even seqs are alert events, odd ones snapshots, so every seq leaves exactly one row.
fn records(gw: &Gateway, first: u64, last: u64) -> Vec<Record> {
    (first..=last)
        .map(|seq| {
            if seq % 2 == 0 {
                alert_event(seq, AlertId::new(), AlertState::Triggered)
            } else {
                snapshot(seq, &gw.school_id)
            }
        })
        .collect()
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn fifty_gateways_in_parallel_keep_their_records_complete_and_ordered(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let mut gateways = Vec::new();
    for n in 0..GATEWAYS {
        gateways.push(cloud.enrolled(&format!("school-{n:02}")).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for gw in gateways {
        tasks.spawn(async move {
            for b in 0..BATCHES {
                let (first, last) = (b * PER_BATCH + 1, (b + 1) * PER_BATCH);
                let batch = gw.batch(records(&gw, first, last));
                assert_eq!(gw.send(&batch).await.unwrap().acked_through, Seq::new(last));
                // Every other batch is also replayed, as after a lost ack.
                if b % 2 == 1 {
                    assert_eq!(gw.send(&batch).await.unwrap().acked_through, Seq::new(last));
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    let total = i64::try_from(BATCHES * PER_BATCH).unwrap();
    let per_school: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT school_id, count(*), count(DISTINCT seq), min(seq), max(seq) FROM ( \
           SELECT school_id, seq FROM alert_events UNION ALL \
           SELECT school_id, seq FROM snapshots) r GROUP BY school_id ORDER BY 1",
    )
    .fetch_all(&cloud.owner)
    .await
    .unwrap();
    assert_eq!(per_school.len(), GATEWAYS);
    for (school, rows, distinct, min, max) in per_school {
        assert_eq!(
            (rows, distinct, min, max),
            (total, total, 1, total),
            "{school}"
        );
    }
    let cursors: Vec<i64> = sqlx::query_scalar("SELECT DISTINCT last_seq FROM sync_cursors")
        .fetch_all(&cloud.owner)
        .await
        .unwrap();
    assert_eq!(cursors, [total]);
    cloud.stop().await;
}
