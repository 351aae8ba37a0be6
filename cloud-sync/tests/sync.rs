//! The sync endpoint over mutual TLS: idempotence, gaps, identity, bounds and rate.

mod common;

use common::records::{alert_event, health, snapshot, telemetry};
use common::{Options, TestCloud};
use reqwest::StatusCode;
use shared::alert::AlertState;
use shared::ids::{AlertId, Seq};
use shared::sync::{Limits, encode_batch};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const RECORDS: &str =
    "SELECT (SELECT count(*) FROM alert_events) + (SELECT count(*) FROM snapshots)";

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_batch_replayed_three_times_is_stored_once(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let gw = cloud.enrolled("lincoln-high").await;
    let alert = AlertId::new();
    let alerts = gw.alerts(vec![
        alert_event(1, alert, AlertState::Triggered),
        alert_event(2, alert, AlertState::Acknowledged),
    ]);
    let telemetry = gw.telemetry(vec![health(1, "btn-101"), snapshot(2, &gw.school_id)]);
    for _ in 0..3 {
        assert_eq!(gw.send(&alerts).await.unwrap().acked_through, Seq::new(2));
        assert_eq!(
            gw.send(&telemetry).await.unwrap().acked_through,
            Seq::new(2)
        );
    }
    assert_eq!(cloud.count("SELECT count(*) FROM alert_events").await, 2);
    assert_eq!(cloud.count("SELECT count(*) FROM snapshots").await, 1);
    assert_eq!(cloud.count("SELECT count(*) FROM devices").await, 1);
    let latest: (String, i64, i64) =
        sqlx::query_as("SELECT state, last_epoch, last_seq FROM alerts")
            .fetch_one(&cloud.owner)
            .await
            .unwrap();
    assert_eq!(latest, ("acknowledged".to_owned(), gw.epoch.to_i64(), 2));
    let cursors: Vec<(String, i64)> =
        sqlx::query_as("SELECT lane, last_seq FROM sync_cursors ORDER BY lane")
            .fetch_all(&cloud.owner)
            .await
            .unwrap();
    assert_eq!(
        cursors,
        [("alert".to_owned(), 2), ("telemetry".to_owned(), 2)]
    );
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn overlapping_batches_merge_only_the_new_records(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let gw = cloud.enrolled("lincoln-high").await;
    let school = gw.school_id.clone();
    assert_eq!(
        gw.send(&gw.telemetry(telemetry(1, 10, &school)))
            .await
            .unwrap()
            .acked_through,
        Seq::new(10)
    );
    assert_eq!(
        gw.send(&gw.telemetry(telemetry(6, 15, &school)))
            .await
            .unwrap()
            .acked_through,
        Seq::new(15)
    );
    // Entirely old: acknowledged at the cursor, nothing written.
    assert_eq!(
        gw.send(&gw.telemetry(telemetry(2, 4, &school)))
            .await
            .unwrap()
            .acked_through,
        Seq::new(15)
    );
    assert_eq!(cloud.count("SELECT count(*) FROM snapshots").await, 3);
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM snapshots ORDER BY seq")
        .fetch_all(&cloud.owner)
        .await
        .unwrap();
    assert_eq!(seqs, [5, 10, 15]);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_gap_is_refused_with_the_seq_to_resend_from(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let gw = cloud.enrolled("lincoln-high").await;
    let school = gw.school_id.clone();
    gw.send(&gw.telemetry(telemetry(1, 5, &school)))
        .await
        .unwrap();
    let refused = gw
        .send(&gw.telemetry(telemetry(8, 12, &school)))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "sequence_gap")
    );
    assert_eq!(refused.body["expected_seq"], 6);
    assert_eq!(cloud.count(RECORDS).await, 1);
    // Resending from there works.
    assert_eq!(
        gw.send(&gw.telemetry(telemetry(6, 12, &school)))
            .await
            .unwrap()
            .acked_through,
        Seq::new(12)
    );

    // Records out of order within a batch are malformed, not a gap.
    let mut shuffled = telemetry(13, 15, &school);
    shuffled.swap(0, 2);
    let refused = gw.send(&gw.telemetry(shuffled)).await.unwrap_err();
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::BAD_REQUEST, "bad_sequence")
    );
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_batch_naming_another_school_is_forbidden_audited_and_not_written(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let lincoln = cloud.enrolled("lincoln-high").await;
    let oak = cloud.enrolled("oak-primary").await;

    // Lincoln's gateway claims to be Oak's.
    let mut forged = oak.telemetry(telemetry(1, 5, &oak.school_id));
    let refused = lincoln.send(&forged).await.unwrap_err();
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "identity_mismatch")
    );
    // Its own school, but another gateway's id.
    forged.school_id = lincoln.school_id.clone();
    assert_eq!(
        lincoln.send(&forged).await.unwrap_err().status,
        StatusCode::FORBIDDEN
    );
    // Its own names, but a snapshot of Oak inside.
    let smuggled = lincoln.telemetry(vec![snapshot(1, &oak.school_id)]);
    assert_eq!(
        lincoln.send(&smuggled).await.unwrap_err().status,
        StatusCode::FORBIDDEN
    );

    assert_eq!(cloud.count(RECORDS).await, 0);
    assert_eq!(cloud.count("SELECT count(*) FROM devices").await, 0);
    assert_eq!(cloud.count("SELECT count(*) FROM sync_cursors").await, 0);
    assert_eq!(
        cloud
            .count("SELECT count(*) FROM audit_log WHERE action = 'sync' AND outcome = 'forbidden' AND school_id = 'lincoln-high'")
            .await,
        3
    );
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn oversized_bodies_and_batches_get_413(_: PgPoolOptions, opts: PgConnectOptions) {
    let limits = Limits {
        max_compressed: 4096,
        max_records: 100,
        ..Limits::DEFAULT
    };
    let cloud = TestCloud::start_with(
        &opts,
        Options {
            limits,
            ..Options::default()
        },
    )
    .await;
    let gw = cloud.enrolled("lincoln-high").await;
    let refused = gw.send_bytes(vec![7u8; 5000]).await.unwrap_err();
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    let many = gw.telemetry(telemetry(1, 101, &gw.school_id));
    assert!(encode_batch(&many).unwrap().len() < 4096);
    let refused = gw.send(&many).await.unwrap_err();
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large")
    );
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("101 records")
    );
    let refused = gw.send_bytes(vec![1, 0, 9, 9, 9]).await.unwrap_err();
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::BAD_REQUEST, "bad_batch")
    );
    assert_eq!(cloud.count(RECORDS).await, 0);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_gateway_sending_too_fast_gets_429_with_retry_after(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let options = Options {
        rate_per_sec: 0.5,
        rate_burst: 2,
        ..Options::default()
    };
    let cloud = TestCloud::start_with(&opts, options).await;
    let gw = cloud.enrolled("lincoln-high").await;
    let other = cloud.enrolled("oak-primary").await;
    gw.send(&gw.heartbeat()).await.unwrap();
    gw.send(&gw.heartbeat()).await.unwrap();
    let refused = gw.send(&gw.heartbeat()).await.unwrap_err();
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert_eq!(refused.retry_after.as_deref(), Some("2"));
    // Budgets are per gateway.
    other.send(&other.heartbeat()).await.unwrap();
    cloud.stop().await;
}
