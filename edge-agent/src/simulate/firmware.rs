//! A simulated device's firmware: a heartbeat on connect and then periodically, occupancy
//! counts for cameras, presses for buttons, each press retransmitted with the same
//! `(boot, seq)` every second until the gateway's `PressAck` for it arrives.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use firmware_protocol::{
    ButtonPress, Downlink, FirmwareVersion, Frame, Heartbeat, MAX_FRAME_LEN, Occupancy,
    PressPattern, Uplink, decode_downlink, encode_uplink,
};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};

use super::device::{Link, Shared, Spec};
use super::{Rng, Stats};
use crate::store::DeviceKind;

/// Seconds between a camera's occupancy counts.
const OCCUPANCY_INTERVAL: Duration = Duration::from_secs(10);
/// A press is sent again this long after its last attempt until it is acknowledged.
const PRESS_RETRY: Duration = Duration::from_secs(1);
/// Every simulated device runs this firmware.
const FIRMWARE: FirmwareVersion = FirmwareVersion {
    major: 1,
    minor: 0,
    patch: 0,
};
/// The boot counter of every device in a run; the simulator persists nothing.
const BOOT: u32 = 1;

/// A press waiting for its `PressAck`.
#[derive(Debug)]
struct Pending {
    frame: Bytes,
    tries: u32,
    due: Instant,
}

struct Firmware {
    spec: Spec,
    client: AsyncClient,
    up_topic: String,
    stats: Arc<Stats>,
    rng: Rng,
    started: Instant,
    connected: bool,
    seq: u32,
    press_seq: u32,
    pending: BTreeMap<u32, Pending>,
}

/// Runs the device's firmware until the run is cancelled, then disconnects it.
pub(super) async fn behave(
    spec: Spec,
    client: AsyncClient,
    mut link: mpsc::Receiver<Link>,
    mut presses: mpsc::Receiver<PressPattern>,
    shared: Shared,
    mut rng: Rng,
) {
    let start = |every: Duration, rng: &mut Rng| {
        // A random phase, so that devices started together do not report together.
        let phase = every.mul_f64(rng.unit());
        let mut timer = interval_at(Instant::now() + phase, every);
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        timer
    };
    let mut heartbeat = start(spec.heartbeat, &mut rng);
    let mut occupancy = start(OCCUPANCY_INTERVAL, &mut rng);
    let camera = spec.kind == DeviceKind::Camera;
    let mut fw = Firmware {
        up_topic: format!("d/{}/up", spec.id),
        spec,
        client,
        stats: shared.stats,
        rng,
        started: Instant::now(),
        connected: false,
        seq: 0,
        press_seq: 0,
        pending: BTreeMap::new(),
    };
    loop {
        let due = fw.pending.values().map(|p| p.due).min();
        tokio::select! {
            () = shared.cancel.cancelled() => break,
            Some(event) = link.recv() => fw.on_link(event),
            Some(pattern) = presses.recv() => fw.press(pattern),
            _ = heartbeat.tick() => fw.heartbeat(),
            _ = occupancy.tick(), if camera => fw.occupancy(),
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => fw.retransmit(),
        }
    }
    // Presses still pending stay counted: the last summary reports them.
    // Ends `drive` once the DISCONNECT is written; if it cannot be, the orchestrator's
    // deadline ends the run.
    let _ = fw.client.try_disconnect();
}

impl Firmware {
    fn on_link(&mut self, event: Link) {
        match event {
            Link::Up => {
                self.connected = true;
                let down = format!("d/{}/down", self.spec.id);
                if let Err(e) = self.client.try_subscribe(down, QoS::AtLeastOnce) {
                    tracing::warn!(device = %self.spec.id, error = %e, "cannot subscribe");
                }
                // Firmware announces itself on every connect and resends what is unacknowledged.
                self.heartbeat();
                if self.spec.kind == DeviceKind::Camera {
                    self.occupancy();
                }
                let now = Instant::now();
                self.pending.values_mut().for_each(|p| p.due = now);
            }
            Link::Down => self.connected = false,
            Link::Frame(bytes) => match decode_downlink(&bytes) {
                Ok(Frame {
                    body: Downlink::PressAck(ack),
                    ..
                }) => {
                    self.stats.acks.fetch_add(1, Relaxed);
                    if ack.press_boot == BOOT && self.pending.remove(&ack.press_seq).is_some() {
                        self.stats.pending.fetch_sub(1, Relaxed);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(device = %self.spec.id, error = %e, "bad downlink"),
            },
        }
    }

    fn heartbeat(&mut self) {
        let uptime_s = u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX);
        let battery_mv = match self.spec.kind {
            // A coin cell sagging slowly; cameras report their 5 V rail.
            DeviceKind::Button => 3_000u16.saturating_sub((uptime_s / 3_600) as u16),
            DeviceKind::Camera => 5_000,
        };
        let body = Uplink::Heartbeat(Heartbeat {
            uptime_s,
            firmware: FIRMWARE,
            battery_mv: battery_mv + self.rng.below(40) as u16,
            rssi_dbm: -45 - self.rng.below(35) as i8,
            free_heap: 150_000 + self.rng.below(20_000) as u32,
        });
        self.send_new(body);
    }

    fn occupancy(&mut self) {
        let body = Uplink::Occupancy(Occupancy {
            room: self.spec.room,
            students: self.rng.below(31) as u16,
            adults: self.rng.below(4) as u16,
            confidence_pct: 70 + self.rng.below(30) as u8,
        });
        self.send_new(body);
    }

    fn press(&mut self, pattern: PressPattern) {
        self.press_seq += 1;
        let body = Uplink::ButtonPress(ButtonPress {
            pattern,
            press_seq: self.press_seq,
        });
        let Some(frame) = self.encode(body) else {
            return;
        };
        self.stats.presses.fetch_add(1, Relaxed);
        self.stats.pending.fetch_add(1, Relaxed);
        if self.connected {
            self.publish(frame.clone());
        }
        let due = Instant::now() + PRESS_RETRY;
        let pending = Pending {
            frame,
            tries: 1,
            due,
        };
        self.pending.insert(self.press_seq, pending);
    }

    /// Sends every press whose retry time has come again, with its original bytes; gives up
    /// on a press after `press_retry_limit` tries.
    fn retransmit(&mut self) {
        let now = Instant::now();
        let limit = self.spec.press_retry_limit;
        let due: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(&seq, _)| seq)
            .collect();
        for press_seq in due {
            let Some(press) = self.pending.get_mut(&press_seq) else {
                continue;
            };
            if press.tries >= limit {
                self.pending.remove(&press_seq);
                self.stats.pending.fetch_sub(1, Relaxed);
                self.stats.given_up.fetch_add(1, Relaxed);
                continue;
            }
            press.due = now + PRESS_RETRY;
            if self.connected {
                press.tries += 1;
                let frame = press.frame.clone();
                self.stats.retransmits.fetch_add(1, Relaxed);
                self.publish(frame);
            }
        }
    }

    /// Encodes `body` as the next frame and publishes it if connected (a device sends no
    /// reports while offline; the next connect sends a heartbeat).
    fn send_new(&mut self, body: Uplink) {
        if !self.connected {
            return;
        }
        if let Some(frame) = self.encode(body) {
            self.publish(frame);
        }
    }

    fn encode(&mut self, body: Uplink) -> Option<Bytes> {
        self.seq += 1;
        let mut buf = [0u8; MAX_FRAME_LEN];
        match encode_uplink(&Frame::new(BOOT, self.seq, body), &mut buf) {
            Ok(bytes) => Some(Bytes::copy_from_slice(bytes)),
            Err(e) => {
                tracing::error!(device = %self.spec.id, error = %e, "cannot encode a frame");
                None
            }
        }
    }

    fn publish(&self, frame: Bytes) {
        let topic = self.up_topic.clone();
        if let Err(e) = self
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, frame)
        {
            tracing::debug!(device = %self.spec.id, error = %e, "publish queue full");
        }
    }
}
