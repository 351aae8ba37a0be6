//! `cargo xtask bench edge`: the alert path of a real `edge-agent run` process, release build.
//!
//! Setup: a gateway with 1,000 buttons and 40 cameras (one per configured room), and a day of
//! snapshots written into `edge.db` before the agent starts (2,880 heartbeat and 288 scheduled
//! ones, each with its stream event and outbox record, as the engine stores them). Every device
//! connects over mTLS, sends one heartbeat (as at boot) and stays connected.
//!
//! - **Quiet:** 10,000 presses at 1,000/s, round-robin over the buttons (each a new
//!   `press_seq`; after a button's first press its alert is open and the rest join it).
//!   Two latencies per press: sent → `PressAck` read by the device, and sent → the matching
//!   `alert` event read from `GET /api/v1/events` (matched by `device_id` and `press_count`,
//!   first event only).
//! - **Loaded:** the same presses while the buttons send heartbeats (29,000/s together) and the
//!   cameras occupancy reports (1,000/s), all QoS 1 with at most [`WINDOW`] unacknowledged per
//!   device. The achieved rate counts uplinks the gate acknowledged, over the time until the
//!   engine answered a press sent after the last of them (the path is one FIFO from the gate to
//!   the engine, so everything before it was processed).
//! - **Memory:** VmRSS of the agent with the 1,000 buttons connected, after the load, and its
//!   peak (VmHWM).
//!
//! A press without its `PressAck` within 5 s is lost, likewise an event; losses are figures.
//! The load generator runs in this process on the same 2 cores as the agent, so every latency
//! includes its scheduling too.

// A benchmark should stop loudly on any setup failure.
#![allow(clippy::unwrap_used)]

// The tests' raw device and process helpers; the benchmark uses only part of them.
#[path = "../tests/common/device.rs"]
#[allow(dead_code)]
mod device;
#[path = "../tests/common/net.rs"]
mod net;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use device::{RawDevice, bundle_tls};
use edge_agent::config::Config;
use edge_agent::install::{InitOptions, add_device, init};
use edge_agent::store::{DeviceKind, Lane, NewDevice, RoomRow, SnapshotRow};
use edge_agent::view::{SnapshotView, to_json};
use firmware_protocol::{
    ButtonPress, Downlink, FirmwareVersion, Frame, Heartbeat, Label, MAX_FRAME_LEN, Occupancy,
    PressPattern, Uplink, decode_downlink, encode_uplink,
};
use net::{Killed, free_port, wait_listening};
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet, Publish};
use rumqttc::mqttbytes::{self, QoS};
use shared::sync::RecordBody;
use shared::{SchoolSnapshot, SnapshotCounts, UnixMillis};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;

const BUTTONS: usize = 1_000;
/// One camera per room; the buttons are spread over the same rooms.
const CAMERAS: usize = 40;
const PRESSES_PER_S: u64 = 1_000;
const PRESS_SECONDS: u64 = 10;
/// Presses per button in one phase.
const PER_PHASE: u32 = (PRESSES_PER_S * PRESS_SECONDS / BUTTONS as u64) as u32;
/// Press numbers: quiet phase, loaded phase, then one closing press.
const MAX_PRESS_SEQ: u32 = 2 * PER_PHASE + 1;
const HEARTBEATS_PER_S: u64 = 29_000;
const OCCUPANCY_PER_S: u64 = 1_000;
/// Unacknowledged QoS 1 uplinks a device may have before it skips a load frame.
const WINDOW: u32 = 64;
const ACK_WAIT: Duration = Duration::from_secs(5);
/// Any step that makes no progress for this long stops the benchmark.
const STALL: Duration = Duration::from_secs(30);
const BOOT: u32 = 1;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("gw");
    let (mqtt, http) = provision(&data);
    let bundles: Vec<PathBuf> = (0..BUTTONS + CAMERAS)
        .map(|n| add(&data, tmp.path(), n))
        .collect();
    let stored = store_a_day_of_snapshots(&data);
    eprintln!("edge bench: {stored} snapshots stored; starting the agent");
    let agent = start_agent(&data, mqtt, http).await;
    let pid = agent.0.id();
    eprintln!("edge bench: agent pid {pid}");
    let shared = Arc::new(Shared::new());

    let mut fleet = Vec::new();
    for (n, bundle) in bundles.iter().enumerate().take(BUTTONS) {
        fleet.push(Device::connect(mqtt, bundle, n, &shared).await);
    }
    boot_heartbeats(&fleet, &shared).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "figure agent_rss_1000_devices {:.1} MB",
        rss_mb(pid, "VmRSS:")
    );
    for (n, bundle) in bundles.iter().enumerate().skip(BUTTONS) {
        fleet.push(Device::connect(mqtt, bundle, n, &shared).await);
    }
    boot_heartbeats(&fleet, &shared).await;
    let token = std::fs::read_to_string(data.join("operator-token")).unwrap();
    let sse = tokio::spawn(read_events(
        http,
        token.trim().to_owned(),
        Arc::clone(&shared),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    press(&fleet, 1).await;
    wait_for_answers(&shared, 1).await;
    report("edge_press", &shared, 1);

    loaded(&fleet, &shared).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "figure agent_rss_after_load {:.1} MB",
        rss_mb(pid, "VmRSS:")
    );
    println!("figure agent_rss_peak {:.1} MB", rss_mb(pid, "VmHWM:"));
    sse.abort();
    let log = std::fs::read_to_string(data.join("agent.log")).unwrap_or_default();
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        // `wait_listening` opens and closes a TCP connection before the agent is ready.
        .filter(|l| !l.contains("Error while handling MQTT connect packet"))
        .collect();
    if !problems.is_empty() {
        eprintln!(
            "edge bench: the agent logged {} warnings or errors:",
            problems.len()
        );
        for line in problems.iter().take(10) {
            eprintln!("  {line}");
        }
    }
    drop(fleet);
    drop(agent);
}

/// Presses during the background load; prints the uplink rates and the press latencies.
async fn loaded(fleet: &[Device], shared: &Shared) {
    let before = shared.pubacks.load(Ordering::Relaxed);
    let skipped = shared.skipped.load(Ordering::Relaxed);
    let started = Instant::now();
    for device in fleet {
        device.send(Command::Load(true));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    press(fleet, PER_PHASE + 1).await;
    for device in fleet {
        device.send(Command::Load(false));
    }
    let window = started.elapsed();
    let accepted = shared.pubacks.load(Ordering::Relaxed) - before;
    wait_drained(fleet).await;
    // Everything the gate acknowledged before this press is through the engine once its
    // PressAck is back (a backlog counts against the rate).
    fleet[0].send(Command::Press(MAX_PRESS_SEQ));
    let last = index(0, MAX_PRESS_SEQ);
    let deadline = Instant::now() + STALL;
    while shared.acked[last].load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the closing press got no PressAck"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let done = shared.at(&shared.acked[last]).unwrap();
    let uplinks = shared.pubacks.load(Ordering::Relaxed) - before;
    let through = done.duration_since(started);
    wait_for_answers(shared, PER_PHASE + 1).await;
    println!(
        "figure edge_load_accepted_per_s {:.0} msg/s",
        accepted as f64 / window.as_secs_f64()
    );
    println!(
        "figure edge_load_uplinks_per_s {:.0} msg/s",
        uplinks as f64 / through.as_secs_f64()
    );
    println!(
        "figure edge_load_window_full_skips {} frames",
        shared.skipped.load(Ordering::Relaxed) - skipped
    );
    report("edge_load_press", shared, PER_PHASE + 1);
}

// === Setup ===

fn device_id(n: usize) -> String {
    if n < BUTTONS {
        format!("btn-{n:04}")
    } else {
        format!("cam-{:02}", n - BUTTONS)
    }
}

fn room(n: usize) -> Label {
    Label::new(&format!("R-{:02}", n % CAMERAS)).unwrap()
}

/// An initialised gateway whose `agent.toml` has the rooms, loopback listeners and an
/// escalation time beyond the benchmark's length; returns the listeners.
fn provision(data: &Path) -> (SocketAddr, SocketAddr) {
    init(InitOptions {
        data_dir: data.to_owned(),
        school_id: "bench-school".parse().unwrap(),
        school_name: "Bench School".into(),
        hostnames: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
        mqtt_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
    })
    .unwrap();
    let mut config = Config::load(data).unwrap();
    let mqtt: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    config.mqtt_listen = mqtt;
    config.http_listen = http;
    config.alerts.escalate_after = Duration::from_secs(3_600);
    config.rooms = (0..CAMERAS)
        .map(|n| RoomRow {
            id: room(n),
            building: Some("A".into()),
            floor: Some((n / 10).to_string()),
            capacity: Some(40),
        })
        .collect();
    std::fs::write(data.join("agent.toml"), config.to_toml()).unwrap();
    (mqtt, http)
}

fn add(data: &Path, tmp: &Path, n: usize) -> PathBuf {
    let out = tmp.join(device_id(n));
    let device = NewDevice {
        id: device_id(n).parse().unwrap(),
        kind: if n < BUTTONS {
            DeviceKind::Button
        } else {
            DeviceKind::Camera
        },
        room: room(n),
    };
    add_device(data, &device, &out).unwrap();
    out
}

/// Writes the past day's snapshots as the engine would have: every 30 s a heartbeat snapshot,
/// every 5 min a scheduled one, each with its stream event and outbox record. Test setup,
/// before the agent opens the database; returns how many.
fn store_a_day_of_snapshots(data: &Path) -> usize {
    let mut db = rusqlite::Connection::open(data.join(edge_agent::store::DB_FILE)).unwrap();
    let tx = db.transaction().unwrap();
    let now = UnixMillis::now().get();
    let mut written = 0;
    for (kind, every_s, count) in [("heartbeat", 30, 2_880), ("scheduled", 300, 288)] {
        for i in (1..=count).rev() {
            let at = UnixMillis::new(now - i64::from(i) * every_s * 1_000);
            let counts = SnapshotCounts {
                students_total: 900,
                students_present: 850 - i % 50,
                teachers_present: 40,
                active_alerts: 0,
                devices_online: 1_040,
                devices_offline: 0,
            };
            let row = SnapshotRow {
                snapshot: SchoolSnapshot::new("bench-school".parse().unwrap(), at, counts),
                kind: kind.into(),
                stale_rooms: Vec::new(),
            };
            let s = &row.snapshot;
            tx.execute(
                "INSERT INTO snapshots (at, kind, students_total, students_present, \
                     students_absent, teachers_present, active_alerts, devices_online, \
                     devices_offline, stale_rooms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '')",
                rusqlite::params![
                    at.get(),
                    kind,
                    s.students_total,
                    s.students_present,
                    s.students_absent,
                    s.teachers_present,
                    s.active_alerts,
                    s.devices_online,
                    s.devices_offline,
                ],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO events (at, topic, data) VALUES (?1, 'snapshot', ?2)",
                (at.get(), to_json(&SnapshotView::from(&row))),
            )
            .unwrap();
            let body = RecordBody::Snapshot(row.snapshot.clone());
            tx.execute(
                "INSERT INTO outbox (lane, at, body) VALUES (?1, ?2, ?3)",
                (
                    Lane::of(&body).as_str(),
                    at.get(),
                    postcard::to_stdvec(&body).unwrap(),
                ),
            )
            .unwrap();
            written += 1;
        }
    }
    tx.commit().unwrap();
    written
}

async fn start_agent(data: &Path, mqtt: SocketAddr, http: SocketAddr) -> Killed {
    let log = std::fs::File::create(data.join("agent.log")).unwrap();
    let mut agent = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_edge-agent"))
            .args(["run", "--data-dir"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(status) = agent.0.try_wait().unwrap() {
        let log = std::fs::read_to_string(data.join("agent.log")).unwrap_or_default();
        panic!("edge-agent run exited ({status}):\n{log}");
    }
    wait_listening(mqtt).await;
    wait_listening(http).await;
    agent
}

// === The devices ===

/// What the benchmark records, shared by every task. Times are nanoseconds since `origin`
/// plus one (0: not yet); presses are indexed by [`index`].
struct Shared {
    origin: Instant,
    sent: Vec<AtomicU64>,
    acked: Vec<AtomicU64>,
    streamed: Vec<AtomicU64>,
    pubacks: AtomicU64,
    skipped: AtomicU64,
}

impl Shared {
    fn new() -> Shared {
        let slots = || {
            (0..BUTTONS * MAX_PRESS_SEQ as usize)
                .map(|_| AtomicU64::new(0))
                .collect()
        };
        Shared {
            origin: Instant::now(),
            sent: slots(),
            acked: slots(),
            streamed: slots(),
            pubacks: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Records now in `slot` unless something is there already (the first answer counts).
    fn stamp(&self, slot: &AtomicU64, at: Instant) {
        let nanos = u64::try_from(at.duration_since(self.origin).as_nanos()).unwrap() + 1;
        let _ = slot.compare_exchange(0, nanos, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn at(&self, slot: &AtomicU64) -> Option<Instant> {
        match slot.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(self.origin + Duration::from_nanos(nanos - 1)),
        }
    }
}

/// The slot of button `device`'s press `press_seq` (1-based).
fn index(device: usize, press_seq: u32) -> usize {
    (press_seq as usize - 1) * BUTTONS + device
}

enum Command {
    Press(u32),
    Heartbeat,
    /// Start or stop the background load.
    Load(bool),
    /// A frame of the background load (from the device's own timer): a heartbeat from a
    /// button, an occupancy report from a camera.
    LoadFrame,
}

/// A connected device: its writer task takes commands, its reader task PUBACKs and downlinks.
struct Device {
    commands: mpsc::UnboundedSender<Command>,
    in_flight: Arc<AtomicU32>,
}

impl Device {
    async fn connect(addr: SocketAddr, bundle: &Path, n: usize, shared: &Arc<Shared>) -> Device {
        let id = device_id(n);
        let mut raw = RawDevice::tls(addr, bundle_tls(bundle)).await.unwrap();
        let mut connect = Connect::new(id.as_str());
        connect.keep_alive = 60;
        let ack = raw.mqtt_connect_with(connect).await.expect("CONNACK");
        assert_eq!(ack.code, ConnectReturnCode::Success);
        raw.subscribe(&format!("d/{id}/down")).await.unwrap();
        let (reader, writer) = tokio::io::split(raw.into_stream());
        let (commands, rx) = mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicU32::new(0));
        tokio::spawn(read(reader, n, Arc::clone(shared), Arc::clone(&in_flight)));
        tokio::spawn(write(
            writer,
            n,
            rx,
            Arc::clone(shared),
            Arc::clone(&in_flight),
        ));
        Device {
            commands,
            in_flight,
        }
    }

    fn send(&self, command: Command) {
        self.commands.send(command).unwrap();
    }
}

async fn write(
    mut writer: WriteHalf<TlsStream<TcpStream>>,
    n: usize,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    in_flight: Arc<AtomicU32>,
) {
    let topic = format!("d/{}/up", device_id(n));
    let per_s = if n < BUTTONS {
        HEARTBEATS_PER_S / BUTTONS as u64
    } else {
        OCCUPANCY_PER_S / CAMERAS as u64
    };
    let period = Duration::from_nanos(1_000_000_000 / per_s);
    let mut load: Option<tokio::time::Interval> = None;
    let (mut pkid, mut seq, mut count) = (1u16, 0u32, 0u16);
    let mut out = BytesMut::new();
    loop {
        let tick = async {
            match load.as_mut() {
                Some(interval) => interval.tick().await,
                None => std::future::pending().await,
            }
        };
        let command = tokio::select! {
            command = commands.recv() => command,
            _ = tick => {
                if in_flight.load(Ordering::Relaxed) >= WINDOW {
                    shared.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Some(Command::LoadFrame)
            }
        };
        let (body, press) = match command {
            None => return,
            Some(Command::Load(on)) => {
                // Spread the devices' first ticks over one period.
                let offset = period.mul_f64(n as f64 / (BUTTONS + CAMERAS) as f64);
                load = on.then(|| {
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, period)
                });
                continue;
            }
            Some(Command::Press(press_seq)) => (
                Uplink::ButtonPress(ButtonPress {
                    pattern: PressPattern::Single,
                    press_seq,
                }),
                Some(press_seq),
            ),
            Some(Command::Heartbeat) => (heartbeat(), None),
            Some(Command::LoadFrame) if n < BUTTONS => (heartbeat(), None),
            Some(Command::LoadFrame) => {
                count = (count + 1) % 10;
                (
                    Uplink::Occupancy(Occupancy {
                        room: room(n),
                        students: 20 + count,
                        adults: 1,
                        confidence_pct: 90,
                    }),
                    None,
                )
            }
        };
        seq += 1;
        pkid = pkid % u16::MAX + 1;
        let mut buf = [0u8; MAX_FRAME_LEN];
        let frame = encode_uplink(&Frame::new(BOOT, seq, body), &mut buf).unwrap();
        let mut publish = Publish::new(topic.as_str(), QoS::AtLeastOnce, frame.to_vec());
        publish.pkid = pkid;
        out.clear();
        Packet::Publish(publish).write(&mut out, 1 << 20).unwrap();
        in_flight.fetch_add(1, Ordering::Relaxed);
        if let Some(press_seq) = press {
            shared.stamp(&shared.sent[index(n, press_seq)], Instant::now());
        }
        if writer.write_all(&out).await.is_err() || writer.flush().await.is_err() {
            eprintln!("edge bench: {} lost its connection", device_id(n));
            return;
        }
    }
}

fn heartbeat() -> Uplink {
    Uplink::Heartbeat(Heartbeat {
        uptime_s: 600,
        firmware: FirmwareVersion {
            major: 1,
            minor: 2,
            patch: 3,
        },
        battery_mv: 3_900,
        rssi_dbm: -60,
        free_heap: 100_000,
    })
}

async fn read(
    mut reader: ReadHalf<TlsStream<TcpStream>>,
    n: usize,
    shared: Arc<Shared>,
    in_flight: Arc<AtomicU32>,
) {
    let mut buf = BytesMut::with_capacity(4 * 1024);
    loop {
        match Packet::read(&mut buf, 1 << 20) {
            Ok(Packet::PubAck(_)) => {
                in_flight.fetch_sub(1, Ordering::Relaxed);
                shared.pubacks.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Packet::Publish(publish)) => {
                let now = Instant::now();
                let Ok(frame) = decode_downlink(&publish.payload) else {
                    panic!("{}: undecodable downlink", device_id(n));
                };
                if let Downlink::PressAck(ack) = frame.body
                    && ack.press_boot == BOOT
                    && n < BUTTONS
                    && (1..=MAX_PRESS_SEQ).contains(&ack.press_seq)
                {
                    shared.stamp(&shared.acked[index(n, ack.press_seq)], now);
                }
            }
            Ok(_) => {}
            Err(mqttbytes::Error::InsufficientBytes(_)) => {
                buf.reserve(4 * 1024);
                if reader.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
            }
            Err(e) => panic!("{}: bad packet from the gate: {e}", device_id(n)),
        }
    }
}

/// Every device sends a heartbeat; waits until the gate acknowledged them all.
async fn boot_heartbeats(fleet: &[Device], shared: &Shared) {
    let want = shared.pubacks.load(Ordering::Relaxed) + fleet.len() as u64;
    for device in fleet {
        device.send(Command::Heartbeat);
    }
    let deadline = Instant::now() + STALL;
    while shared.pubacks.load(Ordering::Relaxed) < want {
        assert!(
            Instant::now() < deadline,
            "boot heartbeats not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Other devices' frames may have been counted too; wait for this fleet's own.
    wait_drained(fleet).await;
}

/// Waits until no device has an unacknowledged uplink.
async fn wait_drained(fleet: &[Device]) {
    let deadline = Instant::now() + STALL;
    while fleet
        .iter()
        .any(|d| d.in_flight.load(Ordering::Relaxed) > 0)
    {
        assert!(
            Instant::now() < deadline,
            "uplinks unacknowledged for {STALL:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One phase's presses, `PRESSES_PER_S` a second round-robin over the buttons, numbered from
/// `first_seq`.
async fn press(fleet: &[Device], first_seq: u32) {
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / PRESSES_PER_S));
    let started = Instant::now();
    for n in 0..PRESSES_PER_S * PRESS_SECONDS {
        ticker.tick().await;
        let device = (n % BUTTONS as u64) as usize;
        let seq = first_seq + (n / BUTTONS as u64) as u32;
        fleet[device].send(Command::Press(seq));
    }
    let took = started.elapsed();
    if took > Duration::from_secs(PRESS_SECONDS) + Duration::from_millis(500) {
        eprintln!("edge bench: the presses took {took:?} to send (the generator lagged)");
    }
}

// === The event stream ===

#[derive(serde::Deserialize)]
struct AlertJson {
    device_id: Option<String>,
    press_count: u32,
}

/// Reads `GET /api/v1/events` and stamps each alert event's press (by device and
/// `press_count`).
async fn read_events(http: SocketAddr, token: String, shared: Arc<Shared>) {
    let client = reqwest::Client::new();
    let mut response = client
        .get(format!("http://{http}/api/v1/events"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the event stream opens");
    let mut buf: Vec<u8> = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let now = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block);
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
            };
            if field("event:") != Some("alert") {
                continue;
            }
            let Some(data) = field("data:") else {
                continue;
            };
            let alert: AlertJson = serde_json::from_str(data).unwrap();
            let device = alert
                .device_id
                .as_deref()
                .and_then(|id| id.strip_prefix("btn-"))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(device) = device
                && (1..=MAX_PRESS_SEQ).contains(&alert.press_count)
            {
                shared.stamp(&shared.streamed[index(device, alert.press_count)], now);
            }
        }
    }
    eprintln!("edge bench: the event stream ended");
}

// === Figures ===

/// Waits until every press of the phase starting at `first_seq` has its PressAck and event,
/// or [`ACK_WAIT`] passed after the last was sent.
async fn wait_for_answers(shared: &Shared, first_seq: u32) {
    let slots: Vec<usize> = (first_seq..first_seq + PER_PHASE)
        .flat_map(|seq| (0..BUTTONS).map(move |d| index(d, seq)))
        .collect();
    let deadline = Instant::now() + ACK_WAIT;
    loop {
        let done = slots.iter().all(|&i| {
            shared.acked[i].load(Ordering::Relaxed) != 0
                && shared.streamed[i].load(Ordering::Relaxed) != 0
        });
        if done || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Prints p50/p99/max and the losses of both latencies for one phase's presses.
fn report(prefix: &str, shared: &Shared, first_seq: u32) {
    for (what, answers) in [("ack", &shared.acked), ("sse", &shared.streamed)] {
        let mut latencies = Vec::new();
        let mut lost = 0;
        for seq in first_seq..first_seq + PER_PHASE {
            for device in 0..BUTTONS {
                let i = index(device, seq);
                let latency = shared
                    .at(&shared.sent[i])
                    .zip(shared.at(&answers[i]))
                    .map(|(sent, answered)| answered.saturating_duration_since(sent))
                    .filter(|latency| *latency <= ACK_WAIT);
                match latency {
                    Some(latency) => latencies.push(latency.as_secs_f64() * 1_000.0),
                    None => lost += 1,
                }
            }
        }
        latencies.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            let rank = ((latencies.len() as f64 * q).ceil() as usize).max(1);
            latencies.get(rank - 1).copied().unwrap_or(f64::NAN)
        };
        println!("figure {prefix}_{what}_p50 {:.3} ms", pick(0.50));
        println!("figure {prefix}_{what}_p99 {:.3} ms", pick(0.99));
        println!("figure {prefix}_{what}_max {:.3} ms", pick(1.0));
        println!("figure {prefix}_{what}_lost {lost} presses");
    }
}

fn rss_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}
