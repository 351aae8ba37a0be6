//! The alert path end to end, against the real `edge-agent run` process and devices over
//! mutual TLS: a press is committed, acknowledged to the button and streamed to the
//! dashboard; staff act on it through the local API and the button's LED follows.

mod common;

use std::time::Duration;

use common::Gateway;
use common::button::FwDevice;
use firmware_protocol::{AckState, PressPattern};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);

fn room_config() -> &'static str {
    "\n[[rooms]]\nid = \"A-101\"\nbuilding = \"A\"\nfloor = \"1\"\ncapacity = 30\n"
}

#[tokio::test]
async fn a_press_is_acknowledged_streamed_and_followed_by_the_led() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let agent = gw.run_agent(room_config()).await;
    let mut events = agent.events(None).await;
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 7).await;

    button.press(PressPattern::Single, 1).await;
    let ack = button.press_ack(WAIT).await.expect("PressAck(received)");
    assert_eq!(
        (ack.press_boot, ack.press_seq, ack.state),
        (7, 1, AckState::Received)
    );

    let raised = events
        .wait_for("alert", WAIT, |a| a["state"] == "triggered")
        .await;
    let alert = &raised.data;
    assert_eq!(alert["kind"], "panic", "single press = panic by default");
    assert_eq!(alert["severity"], "high");
    assert_eq!(alert["room"], "A-101");
    assert_eq!(alert["building"], "A");
    assert_eq!(alert["floor"], "1");
    assert_eq!(alert["device_id"], "btn-1");
    assert_eq!(alert["press_count"], 1);
    let id = alert["id"].as_str().unwrap().to_owned();
    assert!(raised.id.is_some(), "stream events carry ids");

    // A retransmission of the same press changes nothing and gets the same answer.
    button.press(PressPattern::Single, 1).await;
    let ack = button.press_ack(WAIT).await.unwrap();
    assert_eq!((ack.press_seq, ack.state), (1, AckState::Received));
    // A further press joins the open alert.
    button.press(PressPattern::Single, 2).await;
    let ack = button.press_ack(WAIT).await.unwrap();
    assert_eq!((ack.press_seq, ack.state), (2, AckState::Received));
    let (status, open) = agent.get("/api/v1/alerts?state=open").await;
    assert_eq!(status, 200);
    let open = open["alerts"].as_array().unwrap();
    assert_eq!(open.len(), 1, "one open alert: {open:?}");
    assert_eq!(open[0]["press_count"], 2);

    // Staff acknowledge: committed, answered, and the button's LED follows.
    let (status, acked) = agent
        .post(
            &format!("/api/v1/alerts/{id}/acknowledge"),
            r#"{"by": "Ms. Rivera", "note": "on my way"}"#,
        )
        .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["state"], "acknowledged");
    let ack = button.press_ack(WAIT).await.unwrap();
    assert_eq!((ack.press_seq, ack.state), (2, AckState::Acknowledged));
    events
        .wait_for("alert", WAIT, |a| a["state"] == "acknowledged")
        .await;

    // Acknowledging twice is refused with a clear error; nothing changes.
    let (status, err) = agent
        .post(&format!("/api/v1/alerts/{id}/acknowledge"), "")
        .await;
    assert_eq!(status, 409);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("already been acknowledged"),
        "{err}"
    );

    let (status, resolved) = agent
        .post(&format!("/api/v1/alerts/{id}/resolve"), "")
        .await;
    assert_eq!(status, 200);
    assert_eq!(resolved["state"], "resolved");
    let ack = button.press_ack(WAIT).await.unwrap();
    assert_eq!(ack.state, AckState::Resolved);

    // A retransmission after the end is answered with how it ended.
    button.press(PressPattern::Single, 2).await;
    assert_eq!(
        button.press_ack(WAIT).await.unwrap().state,
        AckState::Resolved
    );

    let (status, detail) = agent.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(status, 200);
    let log: Vec<(&str, Option<&str>)> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["actor"]["name"].as_str()))
        .collect();
    assert_eq!(
        log,
        [
            ("triggered", Some("btn-1")),
            ("pressed", Some("btn-1")),
            ("acknowledged", Some("Ms. Rivera")),
            ("resolved", Some("front office")),
        ]
    );
    assert_eq!(detail["events"][2]["note"], "on my way");
    assert_eq!(detail["events"][2]["actor"]["source"], "local_dashboard");
    let (_, open) = agent.get("/api/v1/alerts?state=open").await;
    assert_eq!(open["alerts"], Value::Array(vec![]));
}

#[tokio::test]
async fn the_stream_resumes_from_last_event_id() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let agent = gw.run_agent("").await;
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 1).await;
    let mut events = agent.events(None).await;
    button.press(PressPattern::Double, 1).await;
    let first = events
        .wait_for("alert", WAIT, |a| a["state"] == "triggered")
        .await;
    assert_eq!(
        first.data["kind"], "medical",
        "double press = medical by default"
    );
    drop(events);

    // Missed while disconnected: the acknowledgement.
    let id = first.data["id"].as_str().unwrap().to_owned();
    let (status, _) = agent
        .post(&format!("/api/v1/alerts/{id}/acknowledge"), "")
        .await;
    assert_eq!(status, 200);

    let mut resumed = agent.events(first.id).await;
    let missed = resumed
        .wait_for("alert", WAIT, |a| a["id"] == id.as_str())
        .await;
    assert_eq!(missed.data["state"], "acknowledged");
    assert!(missed.id > first.id);
}

#[tokio::test]
async fn the_api_refuses_bad_requests_with_json_errors() {
    let gw = Gateway::init_local();
    let agent = gw.run_agent("").await;
    let client = common::agent::http_client();

    let health = client.get(agent.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "/healthz needs no token");

    let no_token = client
        .get(agent.url("/api/v1/alerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let body: Value = no_token.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("operator token"));
    let wrong = client
        .get(agent.url("/api/v1/alerts"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let unknown = "01935e2c-8e5c-7f3a-9b1e-2f4d6c8a0b1c";
    for (path, want) in [
        (format!("/api/v1/alerts/{unknown}"), 404),
        ("/api/v1/alerts/not-an-id".to_owned(), 400),
        ("/api/v1/alerts?state=open,bogus".to_owned(), 400),
        ("/api/v1/alerts?limit=0".to_owned(), 400),
        ("/api/v1/alerts?colour=red".to_owned(), 400),
        ("/api/v1/nothing".to_owned(), 404),
    ] {
        let (status, body) = agent.get(&path).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    for (path, body, want) in [
        (format!("/api/v1/alerts/{unknown}/acknowledge"), "", 404),
        (format!("/api/v1/alerts/{unknown}/explode"), "", 404),
        (
            format!("/api/v1/alerts/{unknown}/resolve"),
            "{not json",
            400,
        ),
        (
            format!("/api/v1/alerts/{unknown}/resolve"),
            r#"{"note": 5}"#,
            400,
        ),
    ] {
        let (status, reply) = agent.post(&path, body).await;
        assert_eq!(status, want, "{path} {body}: {reply}");
        assert!(reply["error"].is_string());
    }
    let delete = client
        .delete(agent.url("/api/v1/alerts"))
        .bearer_auth(&agent.token)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 405);
    let body: Value = delete.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    let long_note = format!(r#"{{"note": "{}"}}"#, "x".repeat(1_001));
    let (status, _) = agent
        .post(&format!("/api/v1/alerts/{unknown}/resolve"), &long_note)
        .await;
    assert_eq!(status, 400);
    let huge = "x".repeat(100_000);
    let (status, _) = agent
        .post(&format!("/api/v1/alerts/{unknown}/resolve"), &huge)
        .await;
    assert_eq!(status, 413, "bodies are bounded");
}
