//! The agent as a process over its life: bad frames and unknown devices change nothing, every
//! change leaves its outbox record, and SIGTERM stops it within 5 seconds with everything it
//! acknowledged on disk.

mod common;

use std::time::Duration;

use common::Gateway;
use common::button::FwDevice;
use common::device::{RawDevice, tls_config};
use edge_agent::store::{Lane, Store};
use firmware_protocol::{AckState, PressPattern};
use rumqttc::mqttbytes::v4::ConnectReturnCode;
use shared::sync::RecordBody;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn bad_frames_are_refused_and_change_nothing() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let agent = gw.run_agent("").await;
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 1).await;

    // Garbage, an empty payload, a frame of a protocol version we do not speak, a truncated
    // press, and a press with trailing bytes.
    let press = common::button::press_frame(1, 1, PressPattern::Single, 1);
    let mut future_version = press.clone();
    future_version[0] = 2;
    let mut trailing = press.clone();
    trailing.push(0);
    for bad in [
        b"\xff\xfe garbage".to_vec(),
        Vec::new(),
        future_version,
        press[..press.len() - 1].to_vec(),
        trailing,
    ] {
        button.send_bytes(&bad).await;
    }
    assert!(
        button.press_ack(Duration::from_millis(700)).await.is_none(),
        "nothing answered a bad frame"
    );
    let (_, all) = agent.get("/api/v1/alerts").await;
    assert_eq!(all["alerts"].as_array().unwrap().len(), 0);
    let log = agent.log();
    assert!(log.contains("refused an undecodable uplink"), "{log}");

    // The connection and the engine still work.
    button.send_bytes(&press).await;
    assert_eq!(
        button.press_ack(WAIT).await.unwrap().state,
        AckState::Received
    );
    let (_, all) = agent.get("/api/v1/alerts").await;
    assert_eq!(all["alerts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_device_with_a_valid_certificate_but_no_registration_raises_nothing() {
    let gw = Gateway::init_local();
    gw.add("btn-1", "button", "A-101");
    let agent = gw.run_agent("").await;
    // Signed by the gateway's CA, never registered (e.g. a database restored from an older
    // backup than the CA).
    let (cert, key) = common::unregistered_device_cert(&gw, "ghost-1");
    let tls = tls_config(&gw.data.join("ca.pem"), Some((&cert, &key)));
    // The gate checks the registration at CONNECT: code 5 (not authorized), then closed.
    let mut raw = RawDevice::tls(agent.mqtt, tls).await.unwrap();
    let ack = raw.mqtt_connect("ghost-1").await.expect("a CONNACK");
    assert_eq!(ack.code, ConnectReturnCode::NotAuthorized);
    assert!(
        raw.closed_within(WAIT).await,
        "the ghost is still connected"
    );
    // The refusal is logged at warn with the device and its reason.
    let line = agent
        .log_line(WAIT, |l| {
            l["level"] == "WARN"
                && l["fields"]["message"] == "refused CONNECT"
                && l["fields"]["client"] == "device ghost-1"
        })
        .await;
    let reason = line["fields"]["reason"].as_str().unwrap();
    assert!(reason.contains("no registered device"), "{line}");
    let (_, all) = agent.get("/api/v1/alerts").await;
    assert_eq!(
        all["alerts"].as_array().unwrap().len(),
        0,
        "no alert from a ghost"
    );
}

#[tokio::test]
async fn sigterm_stops_within_five_seconds_and_keeps_what_was_acknowledged() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let mut agent = gw.run_agent("").await;
    let _stream = agent.events(None).await; // an open stream must not hold up the stop
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 1).await;
    button.heartbeat(4_000).await;
    button.press(PressPattern::Single, 1).await;
    assert_eq!(
        button.press_ack(WAIT).await.unwrap().state,
        AckState::Received
    );
    let (_, open) = agent.get("/api/v1/alerts?state=open").await;
    let id = open["alerts"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = agent
        .post(&format!("/api/v1/alerts/{id}/acknowledge"), "")
        .await;
    assert_eq!(status, 200);

    // The last heartbeat's time is held in memory (written about once a second); a stop must
    // not lose it.
    let last_heartbeat = shared::UnixMillis::now();
    button.heartbeat(4_000).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (took, exit) = agent.terminate();
    assert!(exit.success(), "clean exit: {exit}\n{}", agent.log());
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");

    // The database is whole, and every alert change has its outbox record, in order.
    let store = Store::open(&gw.data.join("edge.db")).unwrap();
    let devices = store.list_devices().unwrap();
    let seen = devices[0].last_seen_at.expect("btn-1 was seen");
    assert!(
        seen >= last_heartbeat,
        "last_seen {seen:?} lost the final heartbeat"
    );
    // Alert changes in the alert lane, health and snapshots in the telemetry lane, each lane
    // numbered 1, 2, 3, ... and all written under this run's epoch.
    let alerts = store.outbox(Lane::Alert).unwrap();
    let alert_events: Vec<_> = alerts
        .iter()
        .filter_map(|(_, r)| match &r.body {
            RecordBody::AlertEvent(e) => Some((e.event.as_str(), e.state.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        alert_events,
        [("triggered", "triggered"), ("acknowledged", "acknowledged")]
    );
    assert_eq!(alerts.len(), 2, "nothing else in the alert lane");
    let telemetry = store.outbox(Lane::Telemetry).unwrap();
    assert!(
        telemetry.iter().any(
            |(_, r)| matches!(&r.body, RecordBody::DeviceHealth(h) if h.device_id.as_str() == "btn-1")
        ),
        "the device's health change is in the outbox"
    );
    assert!(
        telemetry
            .iter()
            .any(|(_, r)| matches!(r.body, RecordBody::Snapshot(_))),
        "snapshots are in the outbox"
    );
    assert!(
        telemetry
            .iter()
            .all(|(_, r)| r.body.lane() == Some(Lane::Telemetry))
    );
    for lane in [&alerts, &telemetry] {
        let seqs: Vec<u64> = lane.iter().map(|(_, r)| r.seq.get()).collect();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "each lane counts from 1 without a gap");
    }
    let epochs = store.epochs().unwrap();
    assert_eq!(epochs.len(), 1, "one run, one epoch");
    assert!(
        alerts
            .iter()
            .chain(&telemetry)
            .all(|(e, _)| *e == epochs[0]),
        "every record is of the run's epoch"
    );
    drop(store);

    // And a restart carries on where it stopped.
    let mut agent = gw.run_agent("").await;
    let (_, open) = agent.get("/api/v1/alerts?state=open").await;
    assert_eq!(open["alerts"][0]["id"], id.as_str());
    assert_eq!(open["alerts"][0]["state"], "acknowledged");
    let (status, resolved) = agent
        .post(&format!("/api/v1/alerts/{id}/resolve"), "")
        .await;
    assert_eq!(status, 200, "{resolved}");
    let (_, exit) = agent.terminate();
    assert!(exit.success());

    // The second run wrote under an epoch of its own, continuing each lane's numbers.
    let store = Store::open(&gw.data.join("edge.db")).unwrap();
    let epochs = store.epochs().unwrap();
    assert_eq!(epochs.len(), 2, "a new epoch per start");
    let alerts = store.outbox(Lane::Alert).unwrap();
    let last = alerts.last().unwrap();
    assert_eq!(last.1.seq.get(), 3, "the alert lane went on from 2");
    assert_eq!(last.0, epochs[1]);
    assert!(matches!(&last.1.body, RecordBody::AlertEvent(e) if e.state.as_str() == "resolved"));
}
