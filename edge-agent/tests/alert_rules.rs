//! The alert rules that depend on time and configuration, against the real agent process:
//! escalation (also across a crash and restart), the presser's cancel window, and press maps
//! from agent.toml and per device.

mod common;

use std::time::Duration;

use common::Gateway;
use common::button::FwDevice;
use firmware_protocol::{AckState, PressPattern};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn an_unacknowledged_alert_escalates_and_is_announced_again() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    gw.set("alerts", "escalate_after_s", "1");
    let agent = gw.run_agent("").await;
    let mut events = agent.events(None).await;
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 1).await;
    button.press(PressPattern::Single, 1).await;
    assert_eq!(
        button.press_ack(WAIT).await.unwrap().state,
        AckState::Received
    );
    let raised = events
        .wait_for("alert", WAIT, |a| a["state"] == "triggered")
        .await;
    assert_eq!(raised.data["severity"], "high");

    let escalated = events
        .wait_for("alert", WAIT, |a| a["state"] == "escalated")
        .await;
    assert_eq!(
        escalated.data["severity"], "critical",
        "severity goes up a level"
    );
    let late = escalated.data["escalated_at"].as_i64().unwrap()
        - escalated.data["created_at"].as_i64().unwrap();
    assert!(
        (1_000..3_000).contains(&late),
        "escalated {late} ms after the press"
    );

    // Acknowledging an escalated alert works and stops the alarm state.
    let id = escalated.data["id"].as_str().unwrap();
    let (status, acked) = agent
        .post(&format!("/api/v1/alerts/{id}/acknowledge"), "")
        .await;
    assert_eq!(status, 200);
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["severity"], "critical");
}

#[tokio::test]
async fn escalation_timers_survive_a_crash_of_the_agent() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    gw.set("alerts", "escalate_after_s", "2");
    let agent = gw.run_agent("").await;
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 1).await;
    button.press(PressPattern::Single, 1).await;
    assert_eq!(
        button.press_ack(WAIT).await.unwrap().state,
        AckState::Received
    );
    let (_, open) = agent.get("/api/v1/alerts?state=triggered").await;
    let id = open["alerts"][0]["id"].as_str().unwrap().to_owned();
    // SIGKILL: no chance to do anything on the way out.
    drop(button);
    drop(agent);

    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let agent = gw.run_agent("").await;
    let detail = wait_until(&agent, &id, "escalated").await;
    let log: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(log, ["triggered", "escalated"]);
    assert!(
        detail["events"][1]["actor"].is_null(),
        "the timer is no one"
    );
    assert_eq!(detail["severity"], "critical");
}

#[tokio::test]
async fn the_presser_can_cancel_only_within_the_window() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    gw.set("alerts", "cancel_window_s", "1");
    let agent = gw.run_agent("").await;
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 4).await;

    button.press(PressPattern::Single, 1).await;
    assert_eq!(
        button.press_ack(WAIT).await.unwrap().state,
        AckState::Received
    );
    button.cancel(1).await;
    let ack = button.press_ack(WAIT).await.unwrap();
    assert_eq!((ack.press_seq, ack.state), (1, AckState::Cancelled));

    // A cancel naming a press the gateway never saw is refused; nothing else happens.
    button.cancel(99).await;
    assert!(button.press_ack(Duration::from_millis(500)).await.is_none());

    // A new press opens a new alert; a cancel after the window is refused and the device is
    // told the alert stands.
    button.press(PressPattern::Single, 2).await;
    assert_eq!(
        button.press_ack(WAIT).await.unwrap().state,
        AckState::Received
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    button.cancel(2).await;
    let ack = button.press_ack(WAIT).await.unwrap();
    assert_eq!((ack.press_seq, ack.state), (2, AckState::Received));

    let (_, all) = agent.get("/api/v1/alerts").await;
    let states: Vec<&str> = all["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["triggered", "cancelled"], "newest first");
    let cancelled = all["alerts"][1]["id"].as_str().unwrap();
    let (_, detail) = agent.get(&format!("/api/v1/alerts/{cancelled}")).await;
    assert_eq!(detail["events"][1]["actor"]["source"], "device");

    // Staff may cancel at any time.
    let open = all["alerts"][0]["id"].as_str().unwrap();
    let (status, body) = agent
        .post(
            &format!("/api/v1/alerts/{open}/cancel"),
            r#"{"note": "false alarm"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ack = button.press_ack(WAIT).await.unwrap();
    assert_eq!((ack.press_seq, ack.state), (2, AckState::Cancelled));
}

#[tokio::test]
async fn press_maps_come_from_the_config_and_from_the_device() {
    let gw = Gateway::init_local();
    let plain = gw.add("btn-1", "button", "A-101");
    let fire_out = gw.tmp.path().join("btn-2");
    let mut args = gw.add_args("btn-2", "button", "A-102", &fire_out);
    args.extend(["--press-map", "single=fire"]);
    common::ok(&args);
    let (code, err) = common::fails(&[
        "device",
        "add",
        "--data-dir",
        common::s(&gw.data),
        "--id",
        "btn-3",
        "--kind",
        "button",
        "--room",
        "A-103",
        "--press-map",
        "single=confetti",
        "--out",
        common::s(&gw.tmp.path().join("btn-3")),
    ]);
    assert_eq!(code, 2, "a bad press map is a usage error: {err}");
    assert!(err.contains("unknown press action \"confetti\""), "{err}");

    gw.set("alerts", "press_map", "\"long_hold=ignore\"");
    let agent = gw.run_agent("").await;
    let mut one = FwDevice::connect(agent.mqtt, &plain, "btn-1", 1).await;
    let mut two = FwDevice::connect(agent.mqtt, &fire_out, "btn-2", 1).await;

    one.press(PressPattern::LongHold, 1).await;
    assert_eq!(
        one.press_ack(WAIT).await.unwrap().state,
        AckState::Cancelled,
        "an ignored pattern raises nothing and says so"
    );
    two.press(PressPattern::Single, 1).await;
    assert_eq!(two.press_ack(WAIT).await.unwrap().state, AckState::Received);
    let (_, all) = agent.get("/api/v1/alerts").await;
    let alerts = all["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "fire");
    assert_eq!(alerts[0]["severity"], "critical");
    assert_eq!(alerts[0]["device_id"], "btn-2");
}

async fn wait_until(
    agent: &common::agent::RunningAgent,
    id: &str,
    state: &str,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, detail) = agent.get(&format!("/api/v1/alerts/{id}")).await;
        assert_eq!(status, 200);
        if detail["state"] == state {
            return detail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alert {id} is {} not {state}; agent log:\n{}",
            detail["state"],
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
