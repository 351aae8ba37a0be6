//! The simulated devices: raw MQTT over mTLS, one writer and one reader task each, and what
//! they record (send and answer times of presses, PUBACKs) shared by every task.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use firmware_protocol::{
    ButtonPress, Downlink, FirmwareVersion, Frame, Heartbeat, MAX_FRAME_LEN, Occupancy,
    PressPattern, Uplink, decode_downlink, encode_uplink,
};
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet, Publish};
use rumqttc::mqttbytes::{self, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;

use crate::device::{RawDevice, bundle_tls};
use crate::setup::{device_id, room};
use crate::{
    BOOT, BUTTONS, CAMERAS, HEARTBEATS_PER_S, MAX_PRESS_SEQ, OCCUPANCY_PER_S, PRESS_SECONDS,
    PRESSES_PER_S, STALL, WINDOW,
};

/// What the benchmark records, shared by every task. Times are nanoseconds since `origin`
/// plus one (0: not yet); presses are indexed by [`index`].
pub(crate) struct Shared {
    origin: Instant,
    pub(crate) sent: Vec<AtomicU64>,
    pub(crate) acked: Vec<AtomicU64>,
    pub(crate) streamed: Vec<AtomicU64>,
    pub(crate) pubacks: AtomicU64,
    pub(crate) skipped: AtomicU64,
}

impl Shared {
    pub(crate) fn new() -> Shared {
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
    pub(crate) fn stamp(&self, slot: &AtomicU64, at: Instant) {
        let nanos = u64::try_from(at.duration_since(self.origin).as_nanos()).unwrap() + 1;
        let _ = slot.compare_exchange(0, nanos, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(crate) fn at(&self, slot: &AtomicU64) -> Option<Instant> {
        match slot.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(self.origin + Duration::from_nanos(nanos - 1)),
        }
    }
}

/// The slot of button `device`'s press `press_seq` (1-based).
pub(crate) fn index(device: usize, press_seq: u32) -> usize {
    (press_seq as usize - 1) * BUTTONS + device
}

pub(crate) enum Command {
    Press(u32),
    Heartbeat,
    /// Start or stop the background load.
    Load(bool),
    /// A frame of the background load (from the device's own timer): a heartbeat from a
    /// button, an occupancy report from a camera.
    LoadFrame,
}

/// A connected device: its writer task takes commands, its reader task PUBACKs and downlinks.
pub(crate) struct Device {
    commands: mpsc::UnboundedSender<Command>,
    pub(crate) in_flight: Arc<AtomicU32>,
}

impl Device {
    pub(crate) async fn connect(
        addr: SocketAddr,
        bundle: &Path,
        n: usize,
        shared: &Arc<Shared>,
    ) -> Device {
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

    pub(crate) fn send(&self, command: Command) {
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
pub(crate) async fn boot_heartbeats(fleet: &[Device], shared: &Shared) {
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
pub(crate) async fn wait_drained(fleet: &[Device]) {
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
pub(crate) async fn press(fleet: &[Device], first_seq: u32) {
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
