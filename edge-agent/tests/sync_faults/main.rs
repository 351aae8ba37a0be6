//! The sync loop under faults (issue #6, item 7), against the real cloud (`cloud-sync serve`
//! on Postgres) and the real agent: a network that drops, black-holes, cuts answers off,
//! lags and resets; an agent killed with `kill -9` twenty times; a cloud killed and a
//! Postgres restarted mid-sync; a gateway restored from an old backup.
//!
//! Every test ends with the same check, `settled` (tests/common/delivery.rs): for each lane
//! the cloud's cursors cover exactly 1..=the gateway's head across its epochs with nothing
//! dropped, the cloud's alert events are exactly the gateway's local log in order, the
//! snapshots are as many, and the gateway's outbox is empty. Each test prints its figures.
//!
//! - `network`: the fault-injecting proxy between the gateway and the cloud.
//! - `kills`: `kill -9` of the agent under reconnecting devices.
//! - `cloud_crash`: `kill -9` of the cloud and an immediate restart of its Postgres.
//! - `restore`: a data directory restored from an old backup, and what the epoch does.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod cloud_crash;
mod kills;
mod network;
mod restore;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Gateway;
use common::agent::RunningAgent;
use common::button::FwDevice;
use common::cloud::TestCloud;
use common::fleet::{Kind, Spec};
use firmware_protocol::{AckState, PressPattern};

pub(crate) const SCHOOL: &str = common::SCHOOL;
pub(crate) const ROOM: &str = "B-214";
/// How long the sync may take to catch up once the fault is gone.
pub(crate) const SETTLE: Duration = Duration::from_secs(60);

/// An enrolled gateway with `buttons` buttons (`btn-1`…) and, if asked, a camera (`cam-1`),
/// syncing briskly: a heartbeat every second, backoff from 50 ms to 1 s, 3 s per request,
/// and no thinning (nothing waits long enough, but a thinned record would be "dropped").
/// Snapshots follow the camera's counts within half a second, for telemetry to sync.
pub(crate) fn gateway(cloud: &TestCloud, buttons: usize, camera: bool) -> (Gateway, Vec<Spec>) {
    let gw = cloud.enrolled_gateway(SCHOOL);
    gw.set("sync", "request_timeout_s", "3");
    gw.set("sync", "thin_after_s", "86400");
    gw.set("snapshots", "debounce_ms", "100");
    let mut specs = Vec::new();
    for i in 1..=buttons {
        let id = format!("btn-{i}");
        let bundle = gw.add(&id, "button", ROOM);
        specs.push(Spec {
            id,
            bundle,
            kind: Kind::Button { lo: 50, hi: 400 },
        });
    }
    if camera {
        let bundle = gw.add("cam-1", "camera", ROOM);
        specs.push(Spec {
            id: "cam-1".into(),
            bundle,
            kind: Kind::Camera { room: ROOM.into() },
        });
    }
    (gw, specs)
}

/// Connects every device of `specs` with `boot`.
pub(crate) async fn connect_all(agent: &RunningAgent, specs: &[Spec], boot: u32) -> Vec<FwDevice> {
    let mut devices = Vec::new();
    for spec in specs {
        devices.push(FwDevice::connect(agent.mqtt, &spec.bundle, &spec.id, boot).await);
    }
    devices
}

/// Presses `button` (press seq `press_seq`) and waits for the `PressAck` naming that press;
/// returns how long it took. The gateway answers from its own database, cloud or no cloud.
pub(crate) async fn press(button: &mut FwDevice, press_seq: u32) -> Duration {
    let start = Instant::now();
    button.press(PressPattern::Single, press_seq).await;
    loop {
        let ack = button
            .press_ack(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no PressAck for {} press {press_seq}", button.id));
        // A resolve earlier answers the press before with its end; skip it.
        if ack.press_seq == press_seq {
            assert_ne!(ack.state, AckState::Cancelled);
            return start.elapsed();
        }
    }
}

/// Resolves every open alert from the local dashboard; returns how many.
pub(crate) async fn resolve_open(agent: &RunningAgent) -> usize {
    let (status, open) = agent.get("/api/v1/alerts?state=open").await;
    assert_eq!(status, 200, "{open}");
    let mut resolved = 0;
    for alert in open["alerts"].as_array().unwrap() {
        let id = alert["id"].as_str().unwrap();
        let (status, body) = agent
            .post(&format!("/api/v1/alerts/{id}/resolve"), "")
            .await;
        assert_eq!(status, 200, "{body}");
        resolved += 1;
    }
    resolved
}

/// The cloud's alert events of `gateway` that a press made (`triggered` or `pressed`), per
/// alert.
pub(crate) async fn cloud_presses(cloud: &TestCloud, gateway: &str) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = cloud
        .rows(&format!(
            "SELECT alert_id::text, count(*) FROM alert_events \
             WHERE gateway_id = '{gateway}' AND event IN ('triggered', 'pressed') \
             GROUP BY alert_id"
        ))
        .await;
    rows.into_iter().collect()
}

/// The cloud's highest alert-lane cursor for `gateway` (all epochs), or 0.
pub(crate) async fn alert_cursor(cloud: &TestCloud, gateway: &str) -> i64 {
    let rows: Vec<(Option<i64>,)> = cloud
        .rows(&format!(
            "SELECT max(last_seq) FROM sync_cursors \
             WHERE gateway_id = '{gateway}' AND lane = 'alert'"
        ))
        .await;
    rows[0].0.unwrap_or(0)
}
