//! Setting up the benchmark's gateway: `init` with rooms and loopback listeners, the devices,
//! a day of snapshots in `edge.db`, the agent process, and a probe of the disk's fsync.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use edge_agent::config::Config;
use edge_agent::config::Room;
use edge_agent::install::{InitOptions, add_device, init};
use edge_agent::store::{DeviceKind, NewDevice, SnapshotRow};
use edge_agent::view::{SnapshotView, to_json};
use firmware_protocol::Label;
use shared::sync::RecordBody;
use shared::{SchoolSnapshot, SnapshotCounts, UnixMillis};

use crate::net::{Killed, free_port, wait_listening};
use crate::{BUTTONS, CAMERAS};

pub(crate) fn device_id(n: usize) -> String {
    if n < BUTTONS {
        format!("btn-{n:04}")
    } else {
        format!("cam-{:02}", n - BUTTONS)
    }
}

pub(crate) fn room(n: usize) -> Label {
    Label::new(&format!("R-{:02}", n % CAMERAS)).unwrap()
}

/// An initialised gateway whose `agent.toml` has the rooms, loopback listeners and an
/// escalation time beyond the benchmark's length; returns the listeners.
pub(crate) fn provision(data: &Path) -> (SocketAddr, SocketAddr) {
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
        .map(|n| Room {
            id: room(n),
            building: Some("A".into()),
            floor: Some((n / 10).to_string()),
            capacity: Some(40),
        })
        .collect();
    std::fs::write(data.join("agent.toml"), config.to_toml()).unwrap();
    (mqtt, http)
}

pub(crate) fn add(data: &Path, tmp: &Path, n: usize) -> PathBuf {
    let out = tmp.join(device_id(n));
    let device = NewDevice {
        id: device_id(n).parse().unwrap(),
        kind: if n < BUTTONS {
            DeviceKind::Button
        } else {
            DeviceKind::Camera
        },
        room: room(n),
        press_map: None,
    };
    add_device(data, &device, &out).unwrap();
    out
}

/// Writes the past day's snapshots as the engine would have: every 30 s a heartbeat snapshot,
/// every 5 min a scheduled one, each with its stream event and outbox record. Test setup,
/// before the agent opens the database; returns how many.
pub(crate) fn store_a_day_of_snapshots(data: &Path) -> usize {
    let mut db = rusqlite::Connection::open(data.join(edge_agent::store::DB_FILE)).unwrap();
    let tx = db.transaction().unwrap();
    let now = UnixMillis::now().get();
    // The outage's records were written by an earlier run of the agent, under its epoch.
    const EPOCH: i64 = 0x0bad_5eed;
    tx.execute(
        "INSERT INTO epochs (epoch, started_at) VALUES (?1, ?2)",
        (EPOCH, now - 86_400_000),
    )
    .unwrap();
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
            let seq: i64 = tx
                .query_row(
                    "UPDATE outbox_lanes SET head = head + 1 WHERE lane = 'telemetry' \
                     RETURNING head",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            tx.execute(
                "INSERT INTO outbox (lane, seq, epoch, at, kind, body) \
                 VALUES ('telemetry', ?1, ?2, ?3, 'snapshot', ?4)",
                (seq, EPOCH, at.get(), postcard::to_stdvec(&body).unwrap()),
            )
            .unwrap();
            written += 1;
        }
    }
    tx.commit().unwrap();
    written
}

pub(crate) async fn start_agent(data: &Path, mqtt: SocketAddr, http: SocketAddr) -> Killed {
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

/// Times of 4 KiB appends made durable one by one with fsync in `dir`, in ms, sorted: what a
/// commit with `synchronous=FULL` waits for at least, on this disk right now.
pub(crate) fn fsync_times(dir: &Path) -> Vec<f64> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut times: Vec<f64> = (0..200)
        .map(|_| {
            file.write_all(&[0x5a; 4096]).unwrap();
            let started = Instant::now();
            file.sync_all().unwrap();
            started.elapsed().as_secs_f64() * 1_000.0
        })
        .collect();
    std::fs::remove_file(&path).unwrap();
    times.sort_by(f64::total_cmp);
    times
}
