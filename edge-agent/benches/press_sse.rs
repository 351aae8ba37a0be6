//! `cargo xtask bench realtime` (this program's part): a press on a simulated button until the
//! alert is on a region admin's dashboard stream, through the real gateway, its sync and the
//! real cloud (`cloud-sync serve`, release build, on Postgres from `DATABASE_URL`), link up,
//! everything on loopback. Issue #7's target: p99 ≤ 100 ms.
//!
//! - A region admin (`cloud-sync admin create-user`, signed in with `POST /api/v1/auth/login`)
//!   holds `GET /api/v1/realtime/events` open, as the dashboard does.
//! - [`BUTTONS`] buttons, each a real MQTT client over mTLS to the agent's gate, each press
//!   once, one every [`EVERY`] on a fixed schedule (not waiting for the previous one), so
//!   every press opens a new alert.
//! - The visible event is what the dashboard's banner draws from (`app.js`, `onEvent`): the
//!   first `alert` event of an alert id it does not know yet, in an open state (it adds a
//!   banner row and beeps). It is matched to its press by the event's `device_id`.
//! - Latency: the press's PUBLISH written → that event parsed from the stream. A press whose
//!   event has not come [`WAIT`] after it is lost; the program fails if any is.
//! - Where the time goes, from the same presses: the engine's stamp (`alerts.opened_at`, the
//!   gateway's clock, whole ms), the cloud's transaction start (`realtime_events.at`), and the
//!   two notifications the committing transaction sends, heard by a listener in this process:
//!   `hallwatch_alerts` (the merge) and `hallwatch_realtime` (what each replica's hub hears
//!   before it broadcasts to the streams). The clocks are the same machine's.
//!
//! This process (the buttons, the stream reader, the listener) shares the 2 cores with the
//! agent, the cloud and Postgres.

// A benchmark should stop loudly on any setup failure.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "linked/setup.rs"]
mod setup;
// The cloud's own tests' SSE client, read as a browser's EventSource reads the stream.
#[path = "../../cloud-sync/tests/common/sse.rs"]
#[allow(dead_code)]
mod sse;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::button::FwDevice;
use common::cloud::TestCloud;
use edge_agent::install::add_device;
use edge_agent::store::{DeviceKind, NewDevice};
use firmware_protocol::{AckState, Label, PressPattern};
use serde_json::Value;
use setup::{Database, print_latencies};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;

const BUTTONS: usize = 200;
const EVERY: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(5);
/// The dashboard's open states (`views.js`, `OPEN_STATES`): an `alert` event in one of them
/// about an alert it does not show yet adds a banner row.
const OPEN_STATES: [&str; 3] = ["triggered", "escalated", "acknowledged"];
const PASSWORD: &str = "bench password, long enough";

fn main() {
    setup::runtime().block_on(async {
        let db = Database::create("press_sse").await;
        let cloud = TestCloud::start(&db.opts).await;
        press_to_dashboard(&cloud, &db).await;
        cloud.stop().await;
        db.drop().await;
    });
}

fn button_id(n: usize) -> String {
    format!("btn-{n:04}")
}

/// What a listener heard first about an alert, and when.
enum Heard {
    /// The dashboard stream's first open-state `alert` event of an alert id.
    Stream { device: String, at: Instant },
    /// `hallwatch_realtime`'s first `alert` notification of an alert id (what the hubs hear).
    Realtime { device: String, at: Instant },
    /// `hallwatch_alerts`'s first notification of an alert id (the merge's).
    Merged { alert: String, at: Instant },
    /// The alert id of a device, from `hallwatch_realtime`.
    AlertOf { device: String, alert: String },
    /// Any event read from the stream, by its name.
    Event { kind: String },
}

async fn press_to_dashboard(cloud: &TestCloud, db: &Database) {
    let gw = setup::enrolled_gateway(cloud);
    // Nothing escalates while the benchmark runs: one event per alert.
    gw.set("alerts", "escalate_after_s", "3600");
    let bundles: Vec<PathBuf> = (0..BUTTONS)
        .map(|n| {
            let out = gw.tmp.path().join(button_id(n));
            let device = NewDevice {
                id: button_id(n).parse().unwrap(),
                kind: DeviceKind::Button,
                room: Label::new(&format!("R-{:02}", n % 40)).unwrap(),
                press_map: None,
            };
            add_device(&gw.data, &device, &out).unwrap();
            out
        })
        .collect();
    let agent = gw.run_agent("").await;
    let synced: Vec<(String,)> = cloud
        .wait_for(
            "SELECT gateway_id FROM gateways WHERE last_sync_at IS NOT NULL",
            Duration::from_secs(30),
            |rows: &[(String,)]| !rows.is_empty(),
        )
        .await;
    assert_eq!(synced.len(), 1, "the gateway synced: {}", agent.log());

    // The region admin's dashboard stream, live.
    cloud.create_user(
        "bench@north.example.org",
        PASSWORD,
        "region_admin",
        &["--region", "north"],
    );
    let token = login(&cloud.url(), "bench@north.example.org").await;
    let mut stream = sse::open(&cloud.url(), &token, None).await;
    let ready = stream.next_within(WAIT).await.unwrap();
    assert_eq!(ready.event, "ready", "{ready:?}");
    let (heard, mut hearing) = mpsc::unbounded_channel();
    tokio::spawn(read_stream(stream, heard.clone()));

    let mut listener =
        PgListener::connect_with(&PgPool::connect_with(db.opts.clone()).await.unwrap())
            .await
            .unwrap();
    listener
        .listen_all(["hallwatch_alerts", "hallwatch_realtime"])
        .await
        .unwrap();
    tokio::spawn(listen(listener, heard));

    let mut buttons = Vec::with_capacity(BUTTONS);
    for (n, bundle) in bundles.iter().enumerate() {
        buttons.push(FwDevice::connect(agent.mqtt, bundle, &button_id(n), 1).await);
    }
    // The buttons' arrival (device records synced, their events on the stream) settles first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    while hearing.try_recv().is_ok() {}

    let load = load_average();
    let start = tokio::time::Instant::now() + EVERY;
    let mut sent = Vec::with_capacity(BUTTONS);
    for (n, button) in buttons.iter_mut().enumerate() {
        tokio::time::sleep_until(start + EVERY * u32::try_from(n).unwrap()).await;
        let wall = SystemTime::now();
        sent.push((Instant::now(), wall));
        button.press(PressPattern::Single, 1).await;
    }

    // Everything heard until every press is on the stream, or [`WAIT`] after the last.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut streamed: HashMap<String, Instant> = HashMap::new();
    let mut realtime: HashMap<String, Instant> = HashMap::new();
    let mut merged: HashMap<String, Instant> = HashMap::new();
    let mut alert_of: HashMap<String, String> = HashMap::new();
    let mut events: HashMap<String, u32> = HashMap::new();
    let mut settle = None;
    loop {
        let until = settle.unwrap_or(deadline).min(deadline);
        let Ok(Some(item)) = tokio::time::timeout_at(until, hearing.recv()).await else {
            break;
        };
        match item {
            Heard::Stream { device, at } => {
                streamed.entry(device).or_insert(at);
            }
            Heard::Realtime { device, at } => {
                realtime.entry(device).or_insert(at);
            }
            Heard::Merged { alert, at } => {
                merged.entry(alert).or_insert(at);
            }
            Heard::AlertOf { device, alert } => {
                alert_of.insert(device, alert);
            }
            Heard::Event { kind } => *events.entry(kind).or_default() += 1,
        }
        // The notifications of the last event may come just after it: a moment more.
        if settle.is_none() && streamed.len() == BUTTONS {
            settle = Some(tokio::time::Instant::now() + Duration::from_millis(500));
        }
    }

    // The gateway's and the cloud's own stamps of each alert.
    let opened: HashMap<String, f64> = cloud
        .rows::<(String, i64)>("SELECT device_id, opened_at FROM alerts")
        .await
        .into_iter()
        .map(|(device, at)| (device, at as f64))
        .collect();
    let began: HashMap<String, f64> = cloud
        .rows::<(String, f64)>(
            "SELECT data->>'device_id', (extract(epoch FROM min(at)) * 1000)::float8 \
             FROM realtime_events WHERE kind = 'alert' AND data->>'device_id' IS NOT NULL \
             GROUP BY 1",
        )
        .await
        .into_iter()
        .collect();

    let ms = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1e3;
    let wall_ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1e3;
    let mut to_sse = Vec::new();
    let mut to_realtime = Vec::new();
    let mut to_merged = Vec::new();
    let mut notify_to_sse = Vec::new();
    let mut to_engine = Vec::new();
    let mut to_cloud_tx = Vec::new();
    let mut lost = Vec::new();
    for (n, (at, wall)) in sent.iter().enumerate() {
        let device = button_id(n);
        match streamed.get(&device) {
            Some(seen) if ms(*at, *seen) <= WAIT.as_secs_f64() * 1e3 => {
                to_sse.push(ms(*at, *seen));
                if let Some(heard) = realtime.get(&device) {
                    notify_to_sse.push(ms(*heard, *seen));
                }
            }
            _ => lost.push(device.clone()),
        }
        if let Some(heard) = realtime.get(&device) {
            to_realtime.push(ms(*at, *heard));
        }
        if let Some(heard) = alert_of.get(&device).and_then(|a| merged.get(a)) {
            to_merged.push(ms(*at, *heard));
        }
        if let Some(opened) = opened.get(&device) {
            to_engine.push(opened - wall_ms(*wall));
        }
        if let Some(began) = began.get(&device) {
            to_cloud_tx.push(began - wall_ms(*wall));
        }
    }

    // Each button heard its press acknowledged (read now, so as not to disturb the timing).
    let mut acked = 0;
    for button in &mut buttons {
        if let Some(ack) = button.press_ack(Duration::from_millis(500)).await {
            acked += usize::from(ack.state == AckState::Received);
        }
    }
    drop(buttons);
    drop(agent);
    println!(
        "press_sse: {BUTTONS} presses every {} ms, {acked} PressAcks, load average {load:.2}; \
         stream events by kind during the run: {events:?}",
        EVERY.as_millis()
    );
    print_latencies("press_to_sse", &to_sse);
    println!("figure press_to_sse_lost {} presses", lost.len());
    print_latencies("press_to_engine", &to_engine);
    print_latencies("press_to_cloud_tx", &to_cloud_tx);
    print_latencies("press_to_notify_alerts", &to_merged);
    print_latencies("press_to_notify_realtime", &to_realtime);
    print_latencies("notify_realtime_to_sse", &notify_to_sse);
    println!("figure load_average_1m {load:.2} load");
    assert!(
        lost.is_empty(),
        "{} of {BUTTONS} presses never reached the dashboard stream within {WAIT:?}: {lost:?}",
        lost.len()
    );
    assert_eq!(acked, BUTTONS, "every press acknowledged to its button");
}

/// `POST /api/v1/auth/login`; the access token.
async fn login(base: &str, email: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the region admin signs in");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Reads the stream until it ends; reports every event's name, and each alert's first
/// open-state event as the banner shows it.
async fn read_stream(mut stream: sse::Stream, heard: mpsc::UnboundedSender<Heard>) {
    let mut known = std::collections::HashSet::new();
    while let Some(event) = stream.next().await {
        let at = Instant::now();
        let _ = heard.send(Heard::Event {
            kind: event.event.clone(),
        });
        let data = &event.data["data"];
        if event.event != "alert"
            || !OPEN_STATES.contains(&data["state"].as_str().unwrap_or(""))
            || !known.insert(data["alert_id"].as_str().unwrap_or("").to_owned())
        {
            continue;
        }
        if let Some(device) = data["device_id"].as_str() {
            let _ = heard.send(Heard::Stream {
                device: device.to_owned(),
                at,
            });
        }
    }
}

/// Reports the first notification of each alert on `hallwatch_alerts` and
/// `hallwatch_realtime`.
async fn listen(mut listener: PgListener, heard: mpsc::UnboundedSender<Heard>) {
    while let Ok(note) = listener.recv().await {
        let at = Instant::now();
        let Ok(payload) = serde_json::from_str::<Value>(note.payload()) else {
            continue;
        };
        let sent = if note.channel() == "hallwatch_alerts" {
            payload["alert_id"].as_str().map(|alert| Heard::Merged {
                alert: alert.to_owned(),
                at,
            })
        } else if payload["kind"] == "alert" {
            let data = &payload["data"];
            match (data["device_id"].as_str(), data["alert_id"].as_str()) {
                (Some(device), Some(alert)) => {
                    let _ = heard.send(Heard::AlertOf {
                        device: device.to_owned(),
                        alert: alert.to_owned(),
                    });
                    Some(Heard::Realtime {
                        device: device.to_owned(),
                        at,
                    })
                }
                _ => None,
            }
        } else {
            None
        };
        if let Some(sent) = sent
            && heard.send(sent).is_err()
        {
            return;
        }
    }
}

/// The 1-minute load average (`/proc/loadavg`), to judge how busy the shared machine was.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
