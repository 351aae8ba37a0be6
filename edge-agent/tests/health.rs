//! Device health, room counts and school snapshots, against the real agent process: what the
//! front office sees on the stream and through the API when devices report, fall silent, drop
//! off, or send counts that cannot be true.

// The helper below is not a `#[test]` function, which clippy.toml's allow-unwrap-in-tests
// covers; a test helper should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Gateway;
use common::button::FwDevice;
use firmware_protocol::{Downlink, PressAction};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(5);

fn device<'a>(devices: &'a Value, id: &str) -> &'a Value {
    devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not listed: {devices}"))
}

#[tokio::test]
async fn devices_go_online_report_battery_and_go_offline_on_silence_or_last_will() {
    let gw = Gateway::init_local();
    let quiet = gw.add("btn-1", "button", "A-101");
    let dropped = gw.add("btn-2", "button", "A-101");
    gw.add("btn-3", "button", "A-101");
    gw.set("health", "heartbeat_interval_s", "1");
    gw.set("health", "offline_after_s", "2");
    let agent = gw.run_agent("").await;
    let mut events = agent.events(None).await;

    let (_, devices) = agent.get("/api/v1/devices").await;
    assert_eq!(device(&devices, "btn-3")["status"], "never_seen");

    let mut one = FwDevice::connect(agent.mqtt, &quiet, "btn-1", 1).await;
    one.heartbeat(3_000).await;
    let online = events
        .wait_for("device", WAIT, |d| {
            d["id"] == "btn-1" && d["status"] == "online"
        })
        .await;
    assert_eq!(online.data["battery_mv"], 3_000);
    assert_eq!(
        online.data["battery_low"], true,
        "3.0 V is below the 3.3 V default"
    );
    assert_eq!(online.data["firmware"], "1.2.3");
    // Coming online, the device is sent its settings and the time.
    match one.downlink(WAIT).await {
        Some(Downlink::Config(config)) => {
            assert_eq!(config.heartbeat_interval_s, 1);
            assert_eq!(config.press_map.single, PressAction::Panic);
        }
        other => panic!(
            "expected the device's config, got {other:?}; agent log:\n{}",
            agent.log()
        ),
    }
    match one.downlink(WAIT).await {
        Some(Downlink::TimeSync(sync)) => {
            let now = shared::UnixMillis::now().get() as u64;
            assert!(
                now.abs_diff(sync.unix_ms) < 5_000,
                "{} vs {now}",
                sync.unix_ms
            );
        }
        other => panic!("expected the time, got {other:?}"),
    }

    // Last will: offline at once, well before the silence timeout.
    let two = FwDevice::connect(agent.mqtt, &dropped, "btn-2", 1).await;
    let mut two = two;
    two.heartbeat(4_000).await;
    events
        .wait_for("device", WAIT, |d| {
            d["id"] == "btn-2" && d["status"] == "online"
        })
        .await;
    let started = tokio::time::Instant::now();
    drop(two); // the TCP connection ends without DISCONNECT
    events
        .wait_for("device", WAIT, |d| {
            d["id"] == "btn-2" && d["status"] == "offline"
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "the last will made it offline at once, not after the 2 s timeout"
    );

    // Silence: offline after offline_after.
    events
        .wait_for("device", WAIT, |d| {
            d["id"] == "btn-1" && d["status"] == "offline"
        })
        .await;
    let (_, devices) = agent.get("/api/v1/devices").await;
    assert_eq!(device(&devices, "btn-1")["status"], "offline");
    assert_eq!(device(&devices, "btn-2")["status"], "offline");

    // Back on the next uplink.
    one.heartbeat(3_900).await;
    let back = events
        .wait_for("device", WAIT, |d| {
            d["id"] == "btn-1" && d["status"] == "online"
        })
        .await;
    assert_eq!(
        back.data["battery_low"], false,
        "3.9 V is above threshold + hysteresis"
    );
}

#[tokio::test]
async fn room_counts_make_the_snapshot_and_impossible_counts_are_refused() {
    let gw = Gateway::init_local();
    let cam = gw.add("cam-1", "camera", "A-101");
    let cam2 = gw.add("cam-2", "camera", "A-102");
    gw.set("school", "students_total", "640");
    gw.set("snapshots", "debounce_ms", "100");
    gw.set("snapshots", "stale_after_s", "2");
    let agent = gw
        .run_agent("\n[[rooms]]\nid = \"A-101\"\ncapacity = 30\n\n[[rooms]]\nid = \"A-102\"\ncapacity = 25\n")
        .await;
    let mut events = agent.events(None).await;
    let mut one = FwDevice::connect(agent.mqtt, &cam, "cam-1", 1).await;
    let mut two = FwDevice::connect(agent.mqtt, &cam2, "cam-2", 1).await;

    one.count("A-101", 24, 1).await;
    two.count("A-102", 20, 1).await;
    let snapshot = events
        .wait_for("snapshot", WAIT, |s| s["students_present"] == 44)
        .await;
    assert_eq!(snapshot.data["students_total"], 640);
    assert_eq!(snapshot.data["students_absent"], 596);
    assert_eq!(snapshot.data["teachers_present"], 2);
    assert_eq!(snapshot.data["devices_online"], 2);
    assert_eq!(snapshot.data["kind"], "change");

    // Refused: above capacity × 2, and a room the camera is not in. Nothing changes.
    one.count("A-101", 60, 1).await;
    one.count("A-102", 5, 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // several debounce periods
    let (_, latest) = agent.get("/api/v1/snapshot").await;
    assert_eq!(
        latest["students_present"], 44,
        "refused counts changed nothing"
    );
    one.count("A-101", 25, 1).await;
    let snapshot = events
        .wait_for("snapshot", WAIT, |s| s["students_present"] != 44)
        .await;
    assert_eq!(
        snapshot.data["students_present"], 45,
        "only the valid count counted"
    );
    let (status, latest) = agent.get("/api/v1/snapshot").await;
    assert_eq!(status, 200);
    assert_eq!(latest["students_present"], 45);

    // cam-2 stops reporting: its room goes stale and leaves the totals.
    let stale = events
        .wait_for("snapshot", Duration::from_secs(8), |s| {
            s["stale_rooms"]
                .as_array()
                .is_some_and(|r| r.contains(&Value::from("A-102")))
        })
        .await;
    assert!(
        stale.data["students_present"].as_u64().unwrap() <= 25,
        "A-102's 20 are no longer counted: {}",
        stale.data
    );
    drop(two);
    drop(one);
}
