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
//! - **Memory:** VmRSS of the agent with the 1,000 buttons connected, after the presses, after
//!   the load, and its peak (VmHWM).
//! - **Context:** the disk's fsync time (a probe before the agent starts), the 1-minute load
//!   average of the machine, and the CPU the agent, this process and everything else used in
//!   each phase.
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
#[path = "edge/fleet.rs"]
mod fleet;
#[path = "../tests/common/net.rs"]
mod net;
#[path = "edge/setup.rs"]
mod setup;
#[path = "edge/stream.rs"]
mod stream;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fleet::{Command, Device, Shared, boot_heartbeats, index, press, wait_drained};

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
    let fsync = setup::fsync_times(tmp.path());
    println!("figure disk_fsync_p50 {:.3} ms", quantile(&fsync, 0.50));
    println!("figure disk_fsync_p99 {:.3} ms", quantile(&fsync, 0.99));
    let data = tmp.path().join("gw");
    let (mqtt, http) = setup::provision(&data);
    let bundles: Vec<PathBuf> = (0..BUTTONS + CAMERAS)
        .map(|n| setup::add(&data, tmp.path(), n))
        .collect();
    let stored = setup::store_a_day_of_snapshots(&data);
    eprintln!("edge bench: {stored} snapshots stored; starting the agent");
    let agent = setup::start_agent(&data, mqtt, http).await;
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
    let sse = tokio::spawn(stream::read_events(
        http,
        token.trim().to_owned(),
        Arc::clone(&shared),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let cpu = Cpu::start(pid, "quiet");
    press(&fleet, 1).await;
    cpu.report();
    wait_for_answers(&shared, 1).await;
    report("edge_press", &shared, 1);
    println!(
        "figure agent_rss_after_presses {:.1} MB",
        rss_mb(pid, "VmRSS:")
    );

    loaded(&fleet, &shared, pid).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "figure agent_rss_after_load {:.1} MB",
        rss_mb(pid, "VmRSS:")
    );
    println!("figure agent_rss_peak {:.1} MB", rss_mb(pid, "VmHWM:"));
    sse.abort();
    show_agent_problems(&std::fs::read_to_string(data.join("agent.log")).unwrap_or_default());
    drop(fleet);
    drop(agent);
}

/// Presses during the background load; prints the uplink rates and the press latencies.
async fn loaded(fleet: &[Device], shared: &Shared, pid: u32) {
    let before = shared.pubacks.load(Ordering::Relaxed);
    let skipped = shared.skipped.load(Ordering::Relaxed);
    println!("figure machine_load_1m {:.2} runnable", load_average());
    let cpu = Cpu::start(pid, "loaded");
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
    let [agent, bench, others] = cpu.report();
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
    let (p50, p99) = report("edge_load_press", shared, PER_PHASE + 1);
    // One line per run, so that the spread of the medians can be read against the machine.
    eprintln!(
        "edge bench: loaded: PressAck p50 {p50:.1} ms, p99 {p99:.1} ms; CPU % of one core: \
         agent {agent:.0}, load generator {bench:.0}, others {others:.0}"
    );
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

/// Prints p50/p99/max and the losses of both latencies for one phase's presses; returns the
/// PressAck p50 and p99.
fn report(prefix: &str, shared: &Shared, first_seq: u32) -> (f64, f64) {
    let mut ack = (f64::NAN, f64::NAN);
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
        for (name, q) in [("p50", 0.50), ("p99", 0.99), ("max", 1.0)] {
            println!(
                "figure {prefix}_{what}_{name} {:.3} ms",
                quantile(&latencies, q)
            );
        }
        if what == "ack" {
            ack = (quantile(&latencies, 0.50), quantile(&latencies, 0.99));
        }
        println!("figure {prefix}_{what}_lost {lost} presses");
    }
    ack
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

/// The `q` quantile of sorted `values` (nearest rank); NaN when there are none.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).max(1);
    sorted.get(rank - 1).copied().unwrap_or(f64::NAN)
}

/// CPU time of the agent, of this process (the load generator) and of everything else on the
/// machine (other processes, and time the hypervisor stole) over one phase.
struct Cpu {
    pid: u32,
    phase: &'static str,
    started: Instant,
    agent: f64,
    bench: f64,
    machine: f64,
}

impl Cpu {
    fn start(pid: u32, phase: &'static str) -> Cpu {
        Cpu {
            pid,
            phase,
            started: Instant::now(),
            agent: cpu_seconds(&pid.to_string()),
            bench: cpu_seconds("self"),
            machine: machine_busy_seconds(),
        }
    }

    /// Prints each as a percentage of one core (the machine has two); returns them.
    fn report(self) -> [f64; 3] {
        let wall = self.started.elapsed().as_secs_f64();
        let agent = cpu_seconds(&self.pid.to_string()) - self.agent;
        let bench = cpu_seconds("self") - self.bench;
        let others = machine_busy_seconds() - self.machine - agent - bench;
        let phase = self.phase;
        println!("figure agent_cpu_{phase} {:.0} %", agent / wall * 100.0);
        println!("figure bench_cpu_{phase} {:.0} %", bench / wall * 100.0);
        println!("figure others_cpu_{phase} {:.0} %", others / wall * 100.0);
        [agent, bench, others].map(|seconds| seconds / wall * 100.0)
    }
}

/// User, system and stolen time of all CPUs since boot, in seconds (interrupt time is left
/// out: processes are not charged for it either).
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().unwrap())
        .collect();
    // user, nice, system, idle, iowait, irq, softirq, steal
    (ticks[0] + ticks[1] + ticks[2] + ticks[7]) / 100.0
}

/// User plus system time of every thread of `/proc/{pid}`, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ: /proc reports clock ticks of 1/100 s on Linux regardless of the kernel's HZ.
    ticks / 100.0
}

fn load_average() -> f64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// Passes on what the agent logged as a warning or an error (the log is `RUST_LOG=warn`).
fn show_agent_problems(log: &str) {
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
}
