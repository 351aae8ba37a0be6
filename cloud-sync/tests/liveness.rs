//! Gateway liveness as the cloud sees it: offline after a silence, online again at the next
//! sync, one event and one notification per transition, whoever is watching.

mod common;

use std::time::{Duration, Instant};

use cloud_sync::Liveness;
use cloud_sync::db::liveness::{CHANNEL, mark_silent};
use common::records::telemetry;
use common::{Options, TestCloud};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

/// `(gateway_id, state)` of every gateway event, in order.
async fn events(cloud: &TestCloud) -> Vec<(String, String)> {
    sqlx::query_as("SELECT gateway_id, state FROM gateway_events ORDER BY event_id")
        .fetch_all(&cloud.owner)
        .await
        .expect("query")
}

async fn next_note(listener: &mut PgListener, within: Duration) -> Option<Value> {
    let note = tokio::time::timeout(within, listener.recv()).await.ok()?;
    let note = note.expect("listening");
    assert_eq!(note.channel(), CHANNEL);
    Some(serde_json::from_str(note.payload()).expect("a JSON payload"))
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_silent_gateway_goes_offline_once_and_comes_back_online_once(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let offline_after = Duration::from_secs(1);
    let options = Options {
        liveness: Liveness::new(offline_after),
        ..Options::default()
    };
    let cloud = TestCloud::start_with(&opts, options).await;
    let gw = cloud.enrolled("lincoln-high").await;
    // Enrolled, never synced (not installed yet): never reported offline.
    let _spare = cloud.enrolled("oak-primary").await;
    let mut listener = PgListener::connect_with(&cloud.owner).await.unwrap();
    listener.listen(CHANNEL).await.unwrap();

    // The last sync happens after `sent`, so the mark must not come before
    // `sent + offline_after`.
    let sent = Instant::now();
    gw.send(&gw.heartbeat()).await.unwrap();
    let note = next_note(&mut listener, Duration::from_secs(10))
        .await
        .expect("an offline notification");
    assert!(
        sent.elapsed() >= offline_after,
        "marked offline {:?} after the sync began",
        sent.elapsed()
    );
    let gateway = gw.gateway_id.to_string();
    assert_eq!(
        note,
        json!({ "school_id": "lincoln-high", "gateway_id": gateway, "state": "offline" })
    );
    // Still silent through several more checks: no second event.
    assert_eq!(next_note(&mut listener, Duration::from_secs(2)).await, None);
    assert_eq!(
        events(&cloud).await,
        [(gateway.clone(), "offline".to_owned())]
    );
    assert_eq!(
        cloud
            .count(
                "SELECT count(*) FROM gateway_events \
                 WHERE state = 'offline' AND at - last_sync_at >= interval '1 second'"
            )
            .await,
        1
    );
    assert_eq!(
        cloud
            .count("SELECT count(*) FROM gateways WHERE offline_since IS NOT NULL")
            .await,
        1
    );

    // Sync resumes: the first batch brings it back; the ones after change nothing.
    gw.send(&gw.telemetry(telemetry(1, 5, &gw.school_id)))
        .await
        .unwrap();
    let note = next_note(&mut listener, Duration::from_secs(5))
        .await
        .expect("an online notification");
    assert_eq!(
        note,
        json!({ "school_id": "lincoln-high", "gateway_id": gateway, "state": "online" })
    );
    for _ in 0..3 {
        gw.send(&gw.heartbeat()).await.unwrap();
    }
    assert_eq!(
        next_note(&mut listener, Duration::from_millis(500)).await,
        None
    );
    assert_eq!(
        events(&cloud).await,
        [
            (gateway.clone(), "offline".to_owned()),
            (gateway, "online".to_owned())
        ]
    );
    assert_eq!(
        cloud
            .count("SELECT count(*) FROM gateways WHERE offline_since IS NOT NULL")
            .await,
        0
    );
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn replicas_checking_at_once_mark_a_gateway_offline_once(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // The service's own task would wait a day: the replicas below are the only ones to act.
    let options = Options {
        liveness: Liveness::new(Duration::from_secs(86_400)),
        ..Options::default()
    };
    let cloud = TestCloud::start_with(&opts, options).await;
    let app = common::app_pool(&opts).await;
    let gw = cloud.enrolled("lincoln-high").await;
    gw.send(&gw.heartbeat()).await.unwrap();
    // Synced an hour ago (older than the replicas' 90 s), as far as the database knows.
    sqlx::query("UPDATE gateways SET last_sync_at = now() - interval '1 hour'")
        .execute(&cloud.owner)
        .await
        .unwrap();

    let replica = Liveness::default();
    let mut checks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let app = app.clone();
        checks.spawn(async move { mark_silent(&app, &replica).await.unwrap().len() });
    }
    let mut marked = 0;
    while let Some(n) = checks.join_next().await {
        marked += n.unwrap();
    }
    assert_eq!(marked, 1);

    // Several requests at once when it returns: one comes back online, the rest only sync.
    let gw = std::sync::Arc::new(gw);
    let mut beats = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let gw = gw.clone();
        beats.spawn(async move { gw.send(&gw.heartbeat()).await.map(|_| ()) });
    }
    while let Some(sent) = beats.join_next().await {
        sent.unwrap().unwrap();
    }
    let gateway = gw.gateway_id.to_string();
    assert_eq!(
        events(&cloud).await,
        [
            (gateway.clone(), "offline".to_owned()),
            (gateway, "online".to_owned())
        ]
    );
    // Just synced: nothing to mark.
    assert!(mark_silent(&app, &replica).await.unwrap().is_empty());
    cloud.stop().await;
}
