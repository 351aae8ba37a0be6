//! Devices that behave as firmware does while the gateway under them dies and comes back:
//! each runs in its own task, reconnects whenever its connection ends, and a button keeps
//! every press it has not seen a `PressAck` for and sends it again — the same frame, so the
//! same boot, frame seq and press seq — every second and at once after reconnecting. What
//! each device did is counted in a [`Report`].
//!
//! The randomness (when presses come) is a seeded [`Rng`], so a failing run can be repeated.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firmware_protocol::{Downlink, PressPattern};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use super::button::{FwDevice, count_body, heartbeat_body, press_frame};

/// How often an unacknowledged press is sent again (the simulator's and firmware's period).
const RETRY: Duration = Duration::from_secs(1);

/// SplitMix64: small, seeded, good enough to pick moments.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration in `lo..hi` milliseconds.
    pub(crate) fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next_u64() % (hi - lo))
    }
}

/// What a device is.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// Presses now and then (every `lo..hi` ms) and heartbeats.
    Button { lo: u64, hi: u64 },
    /// Counts its room three times a second and heartbeats.
    Camera { room: String },
}

/// One device: its id, its provisioning bundle, what it is.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) id: String,
    pub(crate) bundle: PathBuf,
    pub(crate) kind: Kind,
}

/// What the fleet is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pressing,
    /// No new presses; the unacknowledged ones are still sent until acknowledged.
    Finishing,
    Stop,
}

/// What one device did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    pub(crate) id: String,
    pub(crate) boot: u32,
    /// Presses made: press seqs 1..=pressed.
    pub(crate) pressed: u32,
    /// Press seqs a `PressAck` came back for.
    pub(crate) acked: BTreeSet<u32>,
    /// Press seqs still waiting for one.
    pub(crate) waiting: BTreeSet<u32>,
    /// Connections made (1 + reconnections).
    pub(crate) connections: u32,
    /// Presses made while the gateway was away (sent once it was back).
    pub(crate) pressed_offline: u32,
    /// Press frames sent again: unacknowledged, a second later or after reconnecting.
    pub(crate) retransmissions: u32,
    /// Heartbeats and counts sent.
    pub(crate) telemetry: u32,
}

/// The running devices.
pub(crate) struct Fleet {
    phase: watch::Sender<Phase>,
    reports: Vec<Arc<Mutex<Report>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    /// Starts every device against the gateway's device listener at `addr`.
    pub(crate) fn start(addr: SocketAddr, specs: &[Spec], seed: u64) -> Fleet {
        let (phase, phases) = watch::channel(Phase::Pressing);
        let mut reports = Vec::new();
        let mut tasks = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let boot = 7 + u32::try_from(i).unwrap();
            let report = Arc::new(Mutex::new(Report {
                id: spec.id.clone(),
                boot,
                ..Report::default()
            }));
            let device = Device {
                spec: spec.clone(),
                addr,
                boot,
                rng: Rng::new(seed ^ (0x1000 + i as u64)),
                phases: phases.clone(),
                report: Arc::clone(&report),
            };
            tasks.push(tokio::spawn(device.run()));
            reports.push(report);
        }
        Fleet {
            phase,
            reports,
            tasks,
        }
    }

    /// No new presses from now on.
    pub(crate) fn finish_pressing(&self) {
        self.phase.send_replace(Phase::Finishing);
    }

    /// Presses still waiting for their `PressAck`, all devices.
    pub(crate) fn waiting(&self) -> usize {
        self.reports
            .iter()
            .map(|r| r.lock().unwrap().waiting.len())
            .sum()
    }

    /// What the devices did so far.
    pub(crate) fn reports(&self) -> Vec<Report> {
        self.reports
            .iter()
            .map(|r| r.lock().unwrap().clone())
            .collect()
    }

    /// Waits (at most `wait`) until every press has its `PressAck`; whether they all do.
    pub(crate) async fn all_acked(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while self.waiting() > 0 {
            if Instant::now() > deadline {
                return false;
            }
            sleep(Duration::from_millis(100)).await;
        }
        true
    }

    /// Stops every device (their connections close) and returns what they did.
    pub(crate) async fn stop(self) -> Vec<Report> {
        self.phase.send_replace(Phase::Stop);
        for task in self.tasks {
            timeout(Duration::from_secs(10), task)
                .await
                .expect("a device stops")
                .unwrap();
        }
        self.reports
            .iter()
            .map(|r| r.lock().unwrap().clone())
            .collect()
    }
}

/// One device's task.
struct Device {
    spec: Spec,
    addr: SocketAddr,
    boot: u32,
    rng: Rng,
    phases: watch::Receiver<Phase>,
    report: Arc<Mutex<Report>>,
}

/// A press waiting for its `PressAck`: its frame, when it was last sent on this connection,
/// and how many times it was sent in all.
struct Pending {
    frame: Vec<u8>,
    sent: Option<Instant>,
    sends: u32,
}

impl Device {
    async fn run(mut self) {
        // Frame seqs count on across connections, as firmware's do within one boot.
        let mut frame_seq = 0u32;
        let mut pending: BTreeMap<u32, Pending> = BTreeMap::new();
        let mut next_press = Instant::now() + self.gap();
        'connection: loop {
            if *self.phases.borrow() == Phase::Stop {
                return;
            }
            // A press while the gateway is away is kept, and sent once it is back.
            self.press_if_due(&mut next_press, &mut frame_seq, &mut pending, true);
            let connected = timeout(
                Duration::from_secs(3),
                FwDevice::try_connect(self.addr, &self.spec.bundle, &self.spec.id, self.boot),
            )
            .await;
            let Ok(Ok(mut dev)) = connected else {
                sleep(Duration::from_millis(50)).await;
                continue;
            };
            self.report.lock().unwrap().connections += 1;
            // After reconnecting, everything unacknowledged goes again at once.
            for press in pending.values_mut() {
                press.sent = None;
            }
            let mut next_telemetry = Instant::now();
            loop {
                if *self.phases.borrow() == Phase::Stop {
                    return;
                }
                self.press_if_due(&mut next_press, &mut frame_seq, &mut pending, false);
                let now = Instant::now();
                for press in pending.values_mut() {
                    if press.sent.is_some_and(|at| now < at + RETRY) {
                        continue;
                    }
                    if dev.try_send_bytes(&press.frame).await.is_err() {
                        continue 'connection;
                    }
                    if press.sends > 0 {
                        self.report.lock().unwrap().retransmissions += 1;
                    }
                    press.sends += 1;
                    press.sent = Some(now);
                }
                if now >= next_telemetry {
                    let body = match &self.spec.kind {
                        Kind::Button { .. } => heartbeat_body(3_900),
                        Kind::Camera { room } => {
                            let students = u16::try_from(self.rng.next_u64() % 30).unwrap();
                            count_body(room, students, 1)
                        }
                    };
                    dev.seq = frame_seq;
                    let sent = dev.try_send(body).await;
                    frame_seq = dev.seq;
                    if sent.is_err() {
                        continue 'connection;
                    }
                    self.report.lock().unwrap().telemetry += 1;
                    next_telemetry = now
                        + match self.spec.kind {
                            Kind::Button { .. } => Duration::from_secs(1),
                            Kind::Camera { .. } => Duration::from_millis(300),
                        };
                }
                match dev.try_downlink(Duration::from_millis(20)).await {
                    Ok(Some(Downlink::PressAck(ack))) if ack.press_boot == self.boot => {
                        if pending.remove(&ack.press_seq).is_some() {
                            let mut report = self.report.lock().unwrap();
                            report.waiting.remove(&ack.press_seq);
                            report.acked.insert(ack.press_seq);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => continue 'connection,
                }
            }
        }
    }

    /// A button presses when its time has come (while the fleet is pressing): the press's
    /// frame is made now and kept until acknowledged.
    fn press_if_due(
        &mut self,
        next_press: &mut Instant,
        frame_seq: &mut u32,
        pending: &mut BTreeMap<u32, Pending>,
        offline: bool,
    ) {
        let now = Instant::now();
        if !matches!(self.spec.kind, Kind::Button { .. })
            || *self.phases.borrow() != Phase::Pressing
            || now < *next_press
        {
            return;
        }
        let press_seq = {
            let mut report = self.report.lock().unwrap();
            report.pressed += 1;
            if offline {
                report.pressed_offline += 1;
            }
            let press_seq = report.pressed;
            report.waiting.insert(press_seq);
            press_seq
        };
        *frame_seq += 1;
        let frame = press_frame(self.boot, *frame_seq, PressPattern::Single, press_seq);
        pending.insert(
            press_seq,
            Pending {
                frame,
                sent: None,
                sends: 0,
            },
        );
        *next_press = now + self.gap();
    }

    /// The wait before the next press.
    fn gap(&mut self) -> Duration {
        match self.spec.kind {
            Kind::Button { lo, hi } => self.rng.millis(lo, hi),
            Kind::Camera { .. } => Duration::from_secs(3_600),
        }
    }
}
