//! Cloud → gateway commands: a cloud-side acknowledge becomes a command, rides every ack
//! until the gateway confirms it, and the alert changes only when the school's event arrives.
//! Also the NOTIFY hook the dashboards will listen to.

mod common;

use std::time::Duration;

use cloud_sync::db::Scope;
use cloud_sync::db::commands::{AlertAction, request_alert_action};
use common::TestCloud;
use common::records::{alert_event, command_result};
use shared::alert::AlertState;
use shared::ids::{AlertId, Seq};
use shared::sync::{Command, CommandBody};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn cloud_acknowledge_round_trips_through_the_gateway(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let app = common::app_pool(&opts).await;
    let gw = cloud.enrolled("lincoln-high").await;
    let other = cloud.enrolled("oak-primary").await;
    let mut listener = PgListener::connect_with(&cloud.owner).await.unwrap();
    listener
        .listen_all(["hallwatch_alerts", "hallwatch_commands"])
        .await
        .unwrap();

    let alert = AlertId::new();
    gw.send(&gw.alerts(vec![alert_event(1, alert, AlertState::Triggered)]))
        .await
        .unwrap();
    let note = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(note.channel(), "hallwatch_alerts");
    let payload: serde_json::Value = serde_json::from_str(note.payload()).unwrap();
    assert_eq!(payload["school_id"], "lincoln-high");
    assert_eq!(payload["alert_id"], alert.to_string());

    // Another school's scope cannot reach the alert.
    let oak = other.school_id.clone();
    let denied = request_alert_action(
        &app,
        Scope::School(&oak),
        &gw.school_id,
        alert,
        AlertAction::Acknowledge,
        "user:x",
    )
    .await
    .unwrap();
    assert_eq!(denied, None);

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
    let note = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(note.channel(), "hallwatch_commands");
    let expected = Command {
        id: command,
        body: CommandBody::Acknowledge {
            alert_id: alert,
            by: "user:ops".to_owned(),
        },
    };

    // Delivered with every ack until confirmed, also on a replay; the alert is unchanged.
    for _ in 0..2 {
        let ack = gw.send(&gw.heartbeat()).await.unwrap();
        assert_eq!(ack.commands, std::slice::from_ref(&expected));
    }
    let ack = gw
        .send(&gw.alerts(vec![alert_event(1, alert, AlertState::Triggered)]))
        .await
        .unwrap();
    assert_eq!(ack.commands, std::slice::from_ref(&expected));
    assert_eq!(other.send(&other.heartbeat()).await.unwrap().commands, []);
    assert_eq!(
        cloud
            .count("SELECT count(*) FROM alerts WHERE state = 'triggered'")
            .await,
        1
    );

    // The gateway applies it: its own event, then the result.
    let ack = gw
        .send(&gw.alerts(vec![
            alert_event(2, alert, AlertState::Acknowledged),
            command_result(3, command),
        ]))
        .await
        .unwrap();
    assert_eq!(ack.acked_through, Seq::new(3));
    assert_eq!(ack.commands, []);
    assert_eq!(
        cloud
            .count("SELECT count(*) FROM alerts WHERE state = 'acknowledged'")
            .await,
        1
    );
    assert_eq!(
        cloud
            .count("SELECT count(*) FROM gateway_commands WHERE outcome = 'applied' AND confirmed_at IS NOT NULL AND deliveries = 3")
            .await,
        1
    );
    assert_eq!(gw.send(&gw.heartbeat()).await.unwrap().commands, []);

    // A closed alert takes no more requests.
    gw.send(&gw.alerts(vec![alert_event(4, alert, AlertState::Resolved)]))
        .await
        .unwrap();
    let late = request_alert_action(
        &app,
        Scope::School(&gw.school_id),
        &gw.school_id,
        alert,
        AlertAction::Resolve,
        "user:ops",
    )
    .await
    .unwrap();
    assert_eq!(late, None);
    cloud.stop().await;
}
