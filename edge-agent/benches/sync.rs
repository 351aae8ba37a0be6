//! `cargo xtask bench sync`: the gateway's sync loop against the real cloud (`cloud-sync serve`
//! on Postgres, `DATABASE_URL`; xtask starts one), both release builds, on loopback.
//!
//! - **Catch-up:** the outbox a 24-hour outage leaves at a school with 1,000 devices and 100
//!   cameras, written into `edge.db` before the agent starts, as the engine writes it: under
//!   the outage run's epoch, each device going offline and back once and one in ten reporting
//!   a low battery (health records are changes; heartbeats every 30 s change nothing),
//!   occupancy every 10 s from 100 cameras changing the counts so a snapshot is taken every
//!   second (the 1 s debounce), and 50 alerts (triggered, acknowledged, resolved). Two
//!   variants: **thinned**, as the engine's default policy leaves it (snapshots older than an
//!   hour kept one per 5 minutes), and **unthinned** (every snapshot kept, the worst case).
//!   The link "returns" when the agent starts; the figure is the time from start until the
//!   cloud's cursors reach the end of both lanes. A button pressed the moment the agent
//!   listens measures how long a new alert takes to reach Postgres behind that backlog.
//! - **Bytes:** everything between gateway and cloud (TLS included) during the catch-up,
//!   counted by a TCP relay in this process, against the same records as JSON.
//! - **Latency, link up:** 200 presses, one every 100 ms, each joining the button's open alert:
//!   press sent → the cloud's `NOTIFY hallwatch_alerts` for it, which the merge sends from the
//!   committing transaction.
//!
//! This process (the button, the relay, the Postgres listener) shares the 2 cores with the
//! agent, the cloud and Postgres.

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "linked/setup.rs"]
mod setup;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Gateway;
use common::button::FwDevice;
use common::cloud::TestCloud;
use edge_agent::store::Store;
use firmware_protocol::{AckState, PressPattern};
use setup::Database;
use shared::alert::{Actor, AlertEventKind, AlertKind, AlertState, Severity, Source};
use shared::ids::{AlertId, DeviceId};
use shared::sync::{AlertEventRecord, DeviceHealthRecord, DeviceStatus, Lane, RecordBody};
use shared::{SchoolSnapshot, SnapshotCounts, UnixMillis};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool};
use tokio::net::{TcpListener, TcpStream};

const SCHOOL: &str = common::SCHOOL;
const DEVICES: u32 = 1_000;
const ALERTS: u32 = 50;
const DAY_S: i64 = 86_400;
const PRESSES: u32 = 200;

fn main() {
    setup::runtime().block_on(async {
        for thinned in [true, false] {
            let db = Database::create("sync").await;
            catch_up(&db.opts, thinned).await;
            db.drop().await;
        }
        let db = Database::create("sync").await;
        link_up_latency(&db.opts).await;
        db.drop().await;
    });
}

/// An enrolled gateway with one real button, whose sync goes through a counting relay.
async fn gateway(cloud: &TestCloud) -> (Gateway, std::path::PathBuf, Relay) {
    let gw = setup::enrolled_gateway(cloud);
    let relay = Relay::start(cloud.sync).await;
    gw.set(
        "cloud",
        "sync_url",
        &format!("\"https://localhost:{}\"", relay.port),
    );
    let bundle = gw.add("btn-0001", "button", "A-101");
    (gw, bundle, relay)
}

async fn catch_up(opts: &PgConnectOptions, thinned: bool) {
    let variant = if thinned { "thinned" } else { "unthinned" };
    let cloud = TestCloud::start(opts).await;
    let (gw, bundle, relay) = gateway(&cloud).await;
    if !thinned {
        // The engine thins at start too; the worst case keeps everything.
        gw.set("sync", "thin_after_s", &(30 * DAY_S).to_string());
    }
    let (alert_head, telemetry_head, json_bytes, records, health) = write_outage(&gw, thinned);
    println!(
        "sync {variant}: backlog of {records} records (alert lane {alert_head}, telemetry lane \
         up to seq {telemetry_head}), {json_bytes} bytes as JSON"
    );

    let start = Instant::now();
    let agent = gw.run_agent("").await;
    let listening = start.elapsed();
    // A press the moment the agent listens: a new alert behind a day's backlog.
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-0001", 1).await;
    let pressed = Instant::now();
    button.press(PressPattern::Single, 1).await;
    assert_eq!(
        button
            .press_ack(Duration::from_secs(10))
            .await
            .unwrap()
            .state,
        AckState::Received
    );
    let alert_sql = format!(
        "SELECT count(*) FROM alerts WHERE device_id = 'btn-0001' AND school_id = '{SCHOOL}'"
    );
    let counted: Vec<(i64,)> = cloud
        .wait_for(&alert_sql, Duration::from_secs(60), |rows: &[(i64,)]| {
            rows[0].0 == 1
        })
        .await;
    assert_eq!(counted[0].0, 1, "the new alert reached the cloud");
    let new_alert = pressed.elapsed();

    // Done when both lanes' cursors reach the heads (the new alert's records included).
    let cursors = "SELECT lane, max(last_seq) FROM sync_cursors GROUP BY lane ORDER BY lane";
    let done = |rows: &[(String, i64)]| {
        let seq = |lane: &str| rows.iter().find(|r| r.0 == lane).map_or(0, |r| r.1);
        seq("alert") > alert_head && seq("telemetry") >= telemetry_head
    };
    let rows: Vec<(String, i64)> = cloud
        .wait_for(cursors, Duration::from_secs(300), done)
        .await;
    let drained = start.elapsed();
    assert!(done(&rows), "the backlog did not drain: {rows:?}");
    let wire = relay.bytes();
    // Every number of the outage's telemetry lane is accounted for in the cloud: a snapshot
    // row, a health record (merged into `devices`), or a run the gateway thinned (the engine
    // thins once more at start, as the hour boundary has moved on by then).
    let outage: Vec<(i64, i64, i64)> = cloud
        .rows(
            "SELECT c.last_seq, c.dropped_thinned + c.dropped_storage_budget, \
               (SELECT count(*) FROM snapshots s WHERE s.epoch = c.epoch) \
             FROM sync_cursors c WHERE c.lane = 'telemetry' ORDER BY c.opened_at LIMIT 1",
        )
        .await;
    let (last, dropped, stored) = outage[0];
    assert_eq!(last, telemetry_head);
    assert_eq!(
        stored + dropped + health,
        telemetry_head,
        "every record accounted for"
    );
    if !thinned {
        assert_eq!(dropped, 0, "nothing thinned in the worst case");
    }
    println!(
        "sync {variant}: {stored} snapshots stored, {dropped} thinned, {health} health records; \
         {wire} bytes carried"
    );

    println!(
        "figure catchup_{variant}_drained {:.2} s",
        drained.as_secs_f64()
    );
    println!(
        "figure catchup_{variant}_agent_listening {:.2} s",
        listening.as_secs_f64()
    );
    println!(
        "figure catchup_{variant}_new_alert_to_cloud {:.0} ms",
        new_alert.as_secs_f64() * 1e3
    );
    println!(
        "figure catchup_{variant}_records_per_s {:.0} records/s",
        records as f64 / drained.as_secs_f64()
    );
    println!("figure catchup_{variant}_wire_bytes {wire} bytes");
    println!(
        "figure catchup_{variant}_wire_bytes_per_record {:.1} bytes",
        wire as f64 / records as f64
    );
    println!(
        "figure catchup_{variant}_json_over_wire {:.1} x",
        json_bytes as f64 / wire as f64
    );
    drop(button);
    drop(agent);
    cloud.stop().await;
}

/// Writes a day's outage into the outbox under an epoch of its own, as the engine would have.
/// Returns the alert lane's head, the telemetry lane's head, the records' JSON size, the
/// number of records left to send, and how many of them are device health records.
fn write_outage(gw: &Gateway, thinned: bool) -> (i64, i64, u64, u64, i64) {
    let mut store = Store::open(&gw.data.join(edge_agent::store::DB_FILE)).unwrap();
    let now = UnixMillis::now().get();
    let start = now - DAY_S * 1_000;
    store.start_epoch(UnixMillis::new(start)).unwrap();
    let school: shared::ids::SchoolId = SCHOOL.parse().unwrap();
    let tx = store.batch().unwrap();
    let device = |n: u32| -> DeviceId { format!("dev-{n:04}").parse().unwrap() };
    let health = |n: u32, status| {
        RecordBody::DeviceHealth(DeviceHealthRecord {
            device_id: device(n),
            status,
            battery_mv: Some(if status == DeviceStatus::BatteryLow {
                2_350
            } else {
                2_950
            }),
            rssi_dbm: Some(-45 - i8::try_from(n % 40).unwrap()),
        })
    };
    let mut ids = std::collections::HashMap::new();
    // Counts and timing carry noise, as real cameras and a debounce timer give them, so the
    // compression figures are not flattered by perfect regularity.
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    let (mut present, mut teachers, mut offline) = (850u32, 60u32, 0u32);
    // Everything in time order: one snapshot a second, the devices' changes and the alerts
    // spread over the day.
    for s in 0..DAY_S {
        let at = UnixMillis::new(start + s * 1_000 + i64::from(noise.below(900)));
        if s % 10 == 0 {
            present = (present + noise.below(7)).saturating_sub(3).clamp(600, 900);
            teachers = (teachers + noise.below(3)).saturating_sub(1).clamp(40, 80);
        }
        let counts = SnapshotCounts {
            students_total: 900,
            students_present: present,
            teachers_present: teachers,
            active_alerts: u32::from(s % 1_700 < 600 && s / 1_700 < i64::from(ALERTS)),
            devices_online: DEVICES - offline,
            devices_offline: offline,
        };
        let snapshot = RecordBody::Snapshot(SchoolSnapshot::new(school.clone(), at, counts));
        tx.append_outbox(at, &snapshot).unwrap();
        // Device n goes offline at second 40n and is back 600 s later; one in ten reports a
        // low battery at 40n + 1200.
        let (n, phase) = (u32::try_from(s / 40).unwrap(), s % 40);
        if n < DEVICES && phase == 0 {
            tx.append_outbox(at, &health(n, DeviceStatus::Offline))
                .unwrap();
            offline += 1;
        }
        if s >= 600 && (s - 600) % 40 == 0 && u32::try_from((s - 600) / 40).unwrap() < DEVICES {
            let n = u32::try_from((s - 600) / 40).unwrap();
            tx.append_outbox(at, &health(n, DeviceStatus::Online))
                .unwrap();
            offline -= 1;
        }
        if s >= 1_200
            && (s - 1_200) % 400 == 0
            && u32::try_from((s - 1_200) / 400).unwrap() < DEVICES / 10
        {
            let n = u32::try_from((s - 1_200) / 400).unwrap() * 10;
            tx.append_outbox(at, &health(n, DeviceStatus::BatteryLow))
                .unwrap();
        }
        // Alert k is raised at 1,700k s, acknowledged a minute later, resolved after ten.
        let k = u32::try_from(s / 1_700).unwrap();
        if k < ALERTS {
            let raised = s % 1_700;
            let step = match raised {
                0 => Some((AlertEventKind::Triggered, AlertState::Triggered, None)),
                60 => Some((
                    AlertEventKind::Acknowledged,
                    AlertState::Acknowledged,
                    Some(Actor::new(Source::LocalDashboard, "office")),
                )),
                600 => Some((
                    AlertEventKind::Resolved,
                    AlertState::Resolved,
                    Some(Actor::new(Source::LocalDashboard, "office")),
                )),
                _ => None,
            };
            if let Some((event, state, actor)) = step {
                let id = *ids.entry(k).or_insert_with(AlertId::new);
                let body = RecordBody::AlertEvent(AlertEventRecord {
                    alert_id: id,
                    kind: AlertKind::Panic,
                    severity: Severity::Critical,
                    state,
                    event,
                    device_id: Some(device(k * 7)),
                    room: Some("A-101".into()),
                    actor: actor.or_else(|| Some(Actor::device(&device(k * 7)))),
                    press_count: 1,
                });
                tx.append_outbox(at, &body).unwrap();
            }
        }
    }
    if thinned {
        tx.thin_telemetry(UnixMillis::new(now - 3_600_000), Duration::from_secs(300))
            .unwrap();
    }
    tx.commit().unwrap();
    let mut json = 0u64;
    let mut records = 0u64;
    let mut heads = [0i64; 2];
    let mut health = 0;
    for (i, lane) in [Lane::Alert, Lane::Telemetry].into_iter().enumerate() {
        for (_, record) in store.outbox(lane).unwrap() {
            json += serde_json::to_vec(&record).unwrap().len() as u64 + 1;
            records += 1;
            health += i64::from(matches!(record.body, RecordBody::DeviceHealth(_)));
            heads[i] = i64::try_from(record.seq.get()).unwrap();
        }
    }
    (heads[0], heads[1], json, records, health)
}

async fn link_up_latency(opts: &PgConnectOptions) {
    let cloud = TestCloud::start(opts).await;
    let (gw, bundle, _relay) = gateway(&cloud).await;
    let agent = gw.run_agent("").await;
    let mut listener = PgListener::connect_with(&PgPool::connect_with(opts.clone()).await.unwrap())
        .await
        .unwrap();
    listener.listen("hallwatch_alerts").await.unwrap();
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-0001", 1).await;
    button.heartbeat(3_000).await;
    let mut latencies = Vec::new();
    let mut lost = 0u32;
    for press_seq in 1..=PRESSES {
        let sent = Instant::now();
        button.press(PressPattern::Single, press_seq).await;
        match tokio::time::timeout(Duration::from_secs(5), listener.recv()).await {
            Ok(Ok(_)) => latencies.push(sent.elapsed().as_secs_f64() * 1e3),
            _ => lost += 1,
        }
        // Its PressAck, so the button does not pile up unread downlinks.
        let _ = button.press_ack(Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Anything else announced meanwhile (none expected) must not count for the next.
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::ZERO, listener.recv()).await {}
    }
    let joined: i64 = sqlx::query("SELECT count(*) FROM alert_events")
        .fetch_one(&PgPool::connect_with(opts.clone()).await.unwrap())
        .await
        .map(|r| r.get(0))
        .unwrap_or(0);
    println!("sync link up: {PRESSES} presses, {joined} alert events in the cloud");
    setup::print_latencies("press_to_cloud", &latencies);
    println!("figure press_to_cloud_lost {lost} presses");
    drop(button);
    drop(agent);
    cloud.stop().await;
}

/// A xorshift generator: deterministic noise for the backlog.
struct Noise(u64);

impl Noise {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        u32::try_from(self.0 % u64::from(n)).unwrap()
    }
}

/// A TCP relay on loopback that counts the bytes it carries both ways.
struct Relay {
    port: u16,
    bytes: Arc<AtomicU64>,
}

impl Relay {
    async fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let bytes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&bytes);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (from_gw, to_gw) = inbound.into_split();
                    let (from_cloud, to_cloud) = outbound.into_split();
                    tokio::join!(
                        pump(from_gw, to_cloud, Arc::clone(&counter)),
                        pump(from_cloud, to_gw, counter)
                    );
                });
            }
        });
        Relay { port, bytes }
    }

    /// Bytes carried so far, both ways.
    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Copies `from` to `to`, counting, until either side closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counter: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}
