//! Sync format 2 in the cloud: each lane of each epoch has its own cursor, dropped runs move
//! it, and batches that break the lane rules are refused whole.

mod common;

use cloud_sync::db::Scope;
use cloud_sync::db::commands::{AlertAction, request_alert_action};
use common::TestCloud;
use common::records::{alert_event, alert_events, dropped, health, snapshot, telemetry};
use reqwest::StatusCode;
use shared::alert::AlertState;
use shared::ids::{AlertId, Epoch, Seq};
use shared::sync::{DropReason, Lane};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// `(lane, last_seq)` of every cursor of `epoch`.
async fn cursors(owner: &PgPool, epoch: Epoch) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT lane, last_seq FROM sync_cursors WHERE epoch = $1 ORDER BY lane")
        .bind(epoch.to_i64())
        .fetch_all(owner)
        .await
        .expect("query")
}

/// The row versions of the tables a merge writes: unchanged when nothing was written.
async fn row_versions(owner: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT string_agg(xmin::text, ',' ORDER BY epoch, lane) FROM sync_cursors \
         UNION ALL SELECT string_agg(xmin::text, ',' ORDER BY alert_id) FROM alerts \
         UNION ALL SELECT string_agg(xmin::text, ',' ORDER BY device_id) FROM devices \
         UNION ALL SELECT count(*)::text FROM alert_events \
         UNION ALL SELECT count(*)::text FROM snapshots",
    )
    .fetch_all(owner)
    .await
    .expect("query")
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn the_two_lanes_advance_independently(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let gw = cloud.enrolled("lincoln-high").await;
    let school = gw.school_id.clone();

    let ack = gw.send(&gw.alerts(alert_events(1, 3))).await.unwrap();
    assert_eq!(ack.acked_through, Seq::new(3));
    let ack = gw.send(&gw.telemetry(telemetry(1, 10, &school))).await;
    assert_eq!(ack.unwrap().acked_through, Seq::new(10));
    // Each lane counts on from its own cursor.
    let ack = gw.send(&gw.alerts(alert_events(4, 5))).await.unwrap();
    assert_eq!(ack.acked_through, Seq::new(5));

    // A gap in one lane is the other lane's no concern.
    let refused = gw
        .send(&gw.telemetry(telemetry(12, 15, &school)))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "sequence_gap")
    );
    assert_eq!(refused.body["expected_seq"], 11);
    let ack = gw.send(&gw.alerts(alert_events(6, 6))).await.unwrap();
    assert_eq!(ack.acked_through, Seq::new(6));

    // A heartbeat is acked at its own lane's cursor.
    let beat = gw.batch(Lane::Telemetry, Vec::new());
    assert_eq!(gw.send(&beat).await.unwrap().acked_through, Seq::new(10));
    assert_eq!(
        gw.send(&gw.heartbeat()).await.unwrap().acked_through,
        Seq::new(6)
    );

    assert_eq!(
        cursors(&cloud.owner, gw.epoch).await,
        [("alert".to_owned(), 6), ("telemetry".to_owned(), 10)]
    );
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM alert_events ORDER BY seq")
        .fetch_all(&cloud.owner)
        .await
        .unwrap();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM snapshots ORDER BY seq")
        .fetch_all(&cloud.owner)
        .await
        .unwrap();
    assert_eq!(seqs, [5, 10]);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn an_old_epoch_replayed_after_a_restore_is_skipped_and_a_new_epoch_is_merged_in_full(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let mut gw = cloud.enrolled("lincoln-high").await;
    let school = gw.school_id.clone();
    let alert = AlertId::new();

    // Epoch A: the alert escalates at alert seq 5; telemetry reaches 10.
    let old = gw.epoch;
    let mut old_alerts = vec![alert_event(1, alert, AlertState::Triggered)];
    old_alerts.extend(alert_events(2, 4));
    old_alerts.push(alert_event(5, alert, AlertState::Escalated));
    let old_telemetry = telemetry(1, 10, &school);
    gw.send(&gw.alerts(old_alerts.clone())).await.unwrap();
    gw.send(&gw.telemetry(old_telemetry.clone())).await.unwrap();
    let before = row_versions(&cloud.owner).await;

    // Restored from a backup taken when the alert lane was at 2 and telemetry at 3: the
    // agent starts a new epoch and numbers on from there.
    gw.restart();
    let new = gw.epoch;
    assert_ne!(old, new);

    // Epoch A's records, replayed from the backup: the same records, skipped without a write
    // and acked at the old cursors.
    let replay = gw.batch_in(old, Lane::Alert, old_alerts[..2].to_vec());
    assert_eq!(gw.send(&replay).await.unwrap().acked_through, Seq::new(5));
    let replay = gw.batch_in(old, Lane::Telemetry, old_telemetry[..3].to_vec());
    assert_eq!(gw.send(&replay).await.unwrap().acked_through, Seq::new(10));
    assert_eq!(row_versions(&cloud.owner).await, before);

    // Epoch B reuses seqs 3.. and is merged in full, though they are below epoch A's cursors.
    let mut new_alerts = vec![alert_event(3, alert, AlertState::Acknowledged)];
    new_alerts.extend(alert_events(4, 6));
    let ack = gw.send(&gw.alerts(new_alerts)).await.unwrap();
    assert_eq!(ack.acked_through, Seq::new(6));
    let ack = gw.send(&gw.telemetry(telemetry(4, 10, &school))).await;
    assert_eq!(ack.unwrap().acked_through, Seq::new(10));

    assert_eq!(cloud.count("SELECT count(*) FROM alert_events").await, 9);
    assert_eq!(cloud.count("SELECT count(*) FROM snapshots").await, 4);
    let per_epoch: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT epoch, count(*), min(seq), max(seq) FROM alert_events GROUP BY epoch ORDER BY 2",
    )
    .fetch_all(&cloud.owner)
    .await
    .unwrap();
    assert_eq!(
        per_epoch,
        [(new.to_i64(), 4, 3, 6), (old.to_i64(), 5, 1, 5)]
    );
    // The alert takes the state of its latest record, although its seq (3) is lower than the
    // one it had (5): seqs of different epochs are not compared.
    let latest: (String, i64, i64) =
        sqlx::query_as("SELECT state, last_epoch, last_seq FROM alerts WHERE alert_id = $1")
            .bind(alert.as_uuid())
            .fetch_one(&cloud.owner)
            .await
            .unwrap();
    assert_eq!(latest, ("acknowledged".to_owned(), new.to_i64(), 3));

    // Both epochs keep their cursors; each is acked at its own.
    assert_eq!(
        cursors(&cloud.owner, old).await,
        [("alert".to_owned(), 5), ("telemetry".to_owned(), 10)]
    );
    assert_eq!(
        cursors(&cloud.owner, new).await,
        [("alert".to_owned(), 6), ("telemetry".to_owned(), 10)]
    );
    let beat = gw.batch_in(old, Lane::Alert, Vec::new());
    assert_eq!(gw.send(&beat).await.unwrap().acked_through, Seq::new(5));
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn dropped_runs_advance_the_cursor_and_are_counted(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let gw = cloud.enrolled("lincoln-high").await;
    let school = gw.school_id.clone();
    let first = gw.telemetry(vec![
        health(1, "cam-1"),
        dropped(2, 50, DropReason::Thinned),
        snapshot(51, &school),
        dropped(52, 60, DropReason::StorageBudget),
    ]);
    assert_eq!(gw.send(&first).await.unwrap().acked_through, Seq::new(60));
    // The next record follows the run's end.
    let next = gw.telemetry(vec![snapshot(61, &school)]);
    assert_eq!(gw.send(&next).await.unwrap().acked_through, Seq::new(61));
    // A replay counts nothing again.
    assert_eq!(gw.send(&first).await.unwrap().acked_through, Seq::new(61));
    // A run that starts at or below the cursor (the gateway dropped records whose ack it
    // never saw) counts only its part beyond the cursor.
    let straddling = gw.telemetry(vec![dropped(55, 70, DropReason::StorageBudget)]);
    assert_eq!(
        gw.send(&straddling).await.unwrap().acked_through,
        Seq::new(70)
    );
    let gap = gw.telemetry(vec![snapshot(72, &school)]);
    let refused = gw.send(&gap).await.unwrap_err();
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["expected_seq"], 71);

    // Alert records may be dead-lettered.
    let alerts = gw.alerts(vec![
        alert_event(1, AlertId::new(), AlertState::Triggered),
        dropped(2, 3, DropReason::DeadLettered),
        alert_event(4, AlertId::new(), AlertState::Triggered),
    ]);
    assert_eq!(gw.send(&alerts).await.unwrap().acked_through, Seq::new(4));

    let counts: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT lane, last_seq, dropped_thinned, dropped_storage_budget, dropped_dead_lettered \
         FROM sync_cursors ORDER BY lane",
    )
    .fetch_all(&cloud.owner)
    .await
    .unwrap();
    assert_eq!(
        counts,
        [
            ("alert".to_owned(), 4, 0, 0, 2),
            ("telemetry".to_owned(), 70, 49, 18, 0)
        ]
    );
    assert_eq!(cloud.count("SELECT count(*) FROM snapshots").await, 2);
    assert_eq!(cloud.count("SELECT count(*) FROM alert_events").await, 2);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_wrong_lane_record_and_thinned_alerts_are_refused_and_nothing_is_written(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let gw = cloud.enrolled("lincoln-high").await;
    let school = gw.school_id.clone();

    let alert_in_telemetry = gw.telemetry(vec![
        health(1, "btn-1"),
        alert_event(2, AlertId::new(), AlertState::Triggered),
    ]);
    let snapshot_in_alerts = gw.alerts(vec![snapshot(1, &school)]);
    for batch in [alert_in_telemetry, snapshot_in_alerts] {
        let refused = gw.send(&batch).await.unwrap_err();
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::BAD_REQUEST, "wrong_lane")
        );
    }
    for reason in [DropReason::Thinned, DropReason::StorageBudget] {
        let batch = gw.alerts(vec![
            alert_event(1, AlertId::new(), AlertState::Triggered),
            dropped(2, 5, reason),
        ]);
        let refused = gw.send(&batch).await.unwrap_err();
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::BAD_REQUEST, "alerts_not_droppable")
        );
    }

    for table in [
        "alert_events",
        "alerts",
        "devices",
        "snapshots",
        "sync_cursors",
        "gateway_events",
    ] {
        let rows: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&cloud.owner)
                .await
                .unwrap();
        assert_eq!(rows, 0, "{table}");
    }
    // Refused before the merge: not even the gateway's liveness was written.
    assert_eq!(
        cloud
            .count("SELECT count(*) FROM gateways WHERE last_sync_at IS NULL")
            .await,
        1
    );
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_heartbeat_of_an_unseen_epoch_is_acked_at_zero_with_pending_commands(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let app = common::app_pool(&opts).await;
    let mut gw = cloud.enrolled("lincoln-high").await;
    let alert = AlertId::new();
    let events = vec![
        alert_event(1, alert, AlertState::Triggered),
        alert_event(2, alert, AlertState::Escalated),
        alert_event(3, AlertId::new(), AlertState::Triggered),
    ];
    gw.send(&gw.alerts(events)).await.unwrap();
    let command = request_alert_action(
        &app,
        Scope::School(&gw.school_id),
        &gw.school_id,
        alert,
        AlertAction::Acknowledge,
        "user:ops",
    )
    .await
    .unwrap()
    .unwrap();

    // The agent restarts: its first contact in the new epoch is a heartbeat, of either lane.
    gw.restart();
    for lane in [Lane::Alert, Lane::Telemetry] {
        let ack = gw.send(&gw.batch(lane, Vec::new())).await.unwrap();
        assert_eq!(ack.acked_through, Seq::ZERO, "{lane}");
        let ids: Vec<_> = ack.commands.iter().map(|c| c.id).collect();
        assert_eq!(ids, [command], "{lane}");
    }
    // A heartbeat opens no cursor: the first record decides where the epoch starts, here
    // after the seqs the gateway used before its restart.
    assert_eq!(cloud.count("SELECT count(*) FROM sync_cursors").await, 1);
    let ack = gw.send(&gw.alerts(alert_events(4, 5))).await.unwrap();
    assert_eq!(ack.acked_through, Seq::new(5));
    assert_eq!(
        cursors(&cloud.owner, gw.epoch).await,
        [("alert".to_owned(), 5)]
    );
    cloud.stop().await;
}
