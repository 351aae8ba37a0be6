//! The gateway's sync loop against the real cloud (`cloud-sync serve` on a fresh Postgres
//! database): what a button does ends up in Postgres, and what a region admin does in the
//! cloud ends up on the button.

mod common;

use std::time::Duration;

use common::Gateway;
use common::button::FwDevice;
use common::cloud::TestCloud;
use firmware_protocol::{AckState, PressPattern};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const SCHOOL: &str = common::SCHOOL;
const WAIT: Duration = Duration::from_secs(15);

/// An enrolled gateway with one button, syncing every second when idle.
async fn enrolled(cloud: &TestCloud) -> (Gateway, std::path::PathBuf) {
    let gw = cloud.enrolled_gateway(SCHOOL);
    let bundle = gw.add("btn-1", "button", "B-214");
    (gw, bundle)
}

#[sqlx::test(migrations = false)]
async fn a_press_reaches_postgres_and_a_cloud_acknowledge_reaches_the_button(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let (gw, bundle) = enrolled(&cloud).await;
    let mut agent = gw.run_agent("").await;
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 1).await;
    button.heartbeat(3_900).await;
    button.press(PressPattern::Single, 1).await;
    assert_eq!(
        button.press_ack(WAIT).await.unwrap().state,
        AckState::Received
    );

    // The alert and its first event are in the cloud.
    let alerts: Vec<(String, String)> = cloud
        .wait_for(
            "SELECT alert_id::text, state FROM alerts",
            WAIT,
            |rows: &[(String, String)]| !rows.is_empty(),
        )
        .await;
    assert_eq!(alerts.len(), 1, "{}", agent.log());
    let (alert_id, state) = &alerts[0];
    assert_eq!(state, "triggered");

    // A region admin acknowledges it in the cloud: a command, delivered with the next ack.
    cloud
        .execute(&format!(
            "INSERT INTO gateway_commands (school_id, command_id, gateway_id, kind, alert_id, \
               requested_by) \
             SELECT school_id, gen_random_uuid(), gateway_id, 'acknowledge', '{alert_id}', \
               'r.admin' FROM gateways"
        ))
        .await;
    // The button's LED hears of it...
    let ack = button
        .press_ack(WAIT)
        .await
        .expect("the acknowledge reached the button");
    assert_eq!(ack.state, AckState::Acknowledged);
    // ...and the cloud is told: the command confirmed, the alert acknowledged by the school.
    let commands: Vec<(Option<String>,)> = cloud
        .wait_for(
            "SELECT outcome FROM gateway_commands",
            WAIT,
            |rows: &[(Option<String>,)]| rows.iter().all(|r| r.0.is_some()),
        )
        .await;
    assert_eq!(commands, [(Some("applied".to_owned()),)]);
    let events: Vec<(String, String, Option<String>)> = cloud
        .wait_for(
            "SELECT event, state, actor_source FROM alert_events ORDER BY seq",
            WAIT,
            |rows: &[(String, String, Option<String>)]| rows.len() >= 2,
        )
        .await;
    assert_eq!(
        events,
        [
            (
                "triggered".into(),
                "triggered".into(),
                Some("device".into())
            ),
            (
                "acknowledged".into(),
                "acknowledged".into(),
                Some("cloud".into())
            ),
        ]
    );
    let state: Vec<(String,)> = cloud.rows("SELECT state FROM alerts").await;
    assert_eq!(state, [("acknowledged".to_owned(),)]);

    // The local status says so, and nothing waits.
    let deadline = tokio::time::Instant::now() + WAIT;
    let status = loop {
        let (code, status) = agent.get("/api/v1/sync").await;
        assert_eq!(code, 200);
        let empty = status["lanes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["backlog"] == 0);
        if (status["link"] == "up" && empty) || tokio::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["link"], "up", "{status}");
    assert_eq!(status["dead_letters"], 0);
    assert!(status["last_success_at"].as_i64().is_some());
    let lanes: Vec<&Value> = status["lanes"].as_array().unwrap().iter().collect();
    assert_eq!(lanes[0]["lane"], "alert");
    assert_eq!(lanes[0]["backlog"], 0, "{status}");

    // `edge-agent status` asks the running agent...
    let text = common::ok(&["status", "--data-dir", common::s(&gw.data)]);
    assert!(text.contains("Agent:          running"), "{text}");
    assert!(text.contains("Cloud link:     up, last sync"), "{text}");
    assert!(text.contains("Alert lane:     nothing waiting"), "{text}");

    let (_, exit) = agent.terminate();
    assert!(exit.success());
    // ...and with the agent stopped, reads the outbox and says the link is unknown.
    let text = common::ok(&["status", "--data-dir", common::s(&gw.data)]);
    assert!(
        text.contains("Agent:          not running (nothing answers on"),
        "{text}"
    );
    assert!(
        text.contains("Cloud link:     unknown (the agent is not running)"),
        "{text}"
    );
    assert!(text.contains("Dead letters:   0"), "{text}");
    cloud.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_damaged_outbox_record_is_set_aside_and_the_lane_moves_on(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let (gw, _) = enrolled(&cloud).await;
    // Three snapshots from an earlier run, the middle one damaged on disk.
    let db = gw.data.join("edge.db");
    {
        let mut store = edge_agent::store::Store::open(&db).unwrap();
        store.start_epoch(shared::UnixMillis::now()).unwrap();
        let tx = store.batch().unwrap();
        for i in 0..3 {
            let at = shared::UnixMillis::new(shared::UnixMillis::now().get() - 10_000 + i);
            let counts = shared::SnapshotCounts {
                students_total: 10,
                students_present: 9,
                teachers_present: 1,
                active_alerts: 0,
                devices_online: 1,
                devices_offline: 0,
            };
            let body = shared::sync::RecordBody::Snapshot(shared::SchoolSnapshot::new(
                SCHOOL.parse().unwrap(),
                at,
                counts,
            ));
            tx.append_outbox(at, &body).unwrap();
        }
        tx.commit().unwrap();
        let conn = rusqlite::Connection::open(&db).unwrap();
        let damaged = conn
            .execute(
                "UPDATE outbox SET body = x'ff00' WHERE lane = 'telemetry' AND seq = 2",
                [],
            )
            .unwrap();
        assert_eq!(damaged, 1);
    }

    let mut agent = gw.run_agent("").await;
    // The cloud has the two readable ones and counts the third as a dead letter.
    let rows: Vec<(i64, i64, i64)> = cloud
        .wait_for(
            "SELECT c.last_seq, c.dropped_dead_lettered, \
               (SELECT count(*) FROM snapshots s WHERE s.epoch = c.epoch) \
             FROM sync_cursors c WHERE c.lane = 'telemetry' ORDER BY c.opened_at LIMIT 1",
            WAIT,
            |rows: &[(i64, i64, i64)]| rows.first().is_some_and(|r| r.0 >= 3),
        )
        .await;
    assert_eq!(rows, [(3, 1, 2)], "{}", agent.log());
    let (_, status) = agent.get("/api/v1/sync").await;
    assert_eq!(status["dead_letters"], 1, "{status}");
    let (_, exit) = agent.terminate();
    assert!(exit.success());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (seq, reason): (i64, String) = conn
        .query_row("SELECT seq, reason FROM dead_letters", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(seq, 2);
    assert!(reason.contains("unreadable on the gateway"), "{reason}");
    cloud.stop().await;
}
