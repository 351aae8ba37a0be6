//! The engine's time rules at exact instants: escalation, the cancel window, device liveness
//! and the snapshot schedule, each a table of steps driven through [`Core`] with a manual
//! clock. Nothing sleeps: the clock moves when a step says so, and a step with no input is the
//! worker waking for its next timer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use firmware_protocol::{
    AckState, ButtonPress, CancelRequest, Downlink, FirmwareVersion, Frame, Heartbeat as Beat,
    MAX_FRAME_LEN, PressPattern, Uplink as Body, decode_downlink, encode_uplink,
};
use shared::UnixMillis;
use shared::alert::{Actor, AlertState, Source};
use shared::ids::{AlertId, DeviceId};
use tokio::sync::{broadcast, oneshot};

use super::worker::Core;
use super::{CommandError, Input, OutboxSignals, Request, StaffVerb};
use crate::bus::{DownlinkError, Outbound, Uplink};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::occupancy::SnapshotKind;
use crate::store::{AlertRow, DeviceKind, NewDevice, Reader, Store, StoreError};
use crate::view::AlertView;

/// When every test starts: a plausible wall time, far from zero.
const T0: i64 = 1_750_000_000_000;
/// The button's id and the boot its frames carry.
const BUTTON: &str = "btn-a101";
const BOOT: u32 = 7;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Records what the engine sends instead of sending it.
#[derive(Debug, Default)]
struct Capture {
    frames: Mutex<Vec<(DeviceId, Bytes)>>,
}

impl Outbound for Capture {
    fn send(&self, device: DeviceId, frame: Bytes) -> Result<(), DownlinkError> {
        self.frames.lock().unwrap().push((device, frame));
        Ok(())
    }

    fn announce(&self, _subtopic: &str, _payload: Bytes) -> Result<(), DownlinkError> {
        Ok(())
    }
}

/// One engine core on a temporary database with one registered button.
struct Harness {
    core: Core,
    clock: Arc<ManualClock>,
    out: Arc<Capture>,
    db: std::path::PathBuf,
    button: DeviceId,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(tune: impl FnOnce(&mut Config)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(crate::layout::DB_FILE);
        let mut config =
            Config::parse("[school]\nid = \"lincoln-high\"\nname = \"Lincoln High\"\n").unwrap();
        tune(&mut config);
        let start = UnixMillis::new(T0);
        let mut store = Store::create(&db, &config.school_id, start).unwrap();
        let button = DeviceId::try_from(BUTTON).unwrap();
        let device = NewDevice {
            id: button.clone(),
            kind: DeviceKind::Button,
            room: firmware_protocol::Label::new("A-101").unwrap(),
            press_map: None,
        };
        let year = UnixMillis::new(T0 + 365 * 86_400_000);
        store
            .add_device(&device, start, start, year, |_| Ok::<(), StoreError>(()))
            .unwrap();
        let clock = ManualClock::starting_at(start);
        let out = Arc::new(Capture::default());
        let (events, _) = broadcast::channel(1_024);
        let (core, _epoch) = Core::start(
            store,
            &config,
            out.clone(),
            events,
            Arc::new(OutboxSignals::default()),
            Arc::new(Metrics::new()),
            clock.clone(),
        )
        .unwrap();
        Harness {
            core,
            clock,
            out,
            db,
            button,
            _dir: dir,
        }
    }

    /// Runs the clock to `at` after the start as the worker would: waking at every timer due
    /// on the way (and at none other), then stopping at `at` without a turn of its own.
    fn run_until(&mut self, at: Duration) {
        let target = UnixMillis::new(T0 + i64::try_from(at.as_millis()).unwrap());
        assert!(target >= self.clock.now(), "steps go forward: {at:?}");
        for _ in 0..1_000_000 {
            match self.core.state.next_deadline() {
                Some(due) if due <= target => {
                    self.move_to(due);
                    self.tick();
                }
                _ => {
                    self.move_to(target);
                    return;
                }
            }
        }
        panic!("a timer that never stops being due");
    }

    fn move_to(&self, to: UnixMillis) {
        if let Some(by) = to.duration_since(self.clock.now()) {
            self.clock.advance(by);
        }
    }

    /// The worker woke for its timers.
    fn tick(&mut self) {
        self.core.process(Vec::new());
    }

    fn uplink(&mut self, seq: u32, body: Body) {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let bytes = encode_uplink(&Frame::new(BOOT, seq, body), &mut buf).unwrap();
        let uplink = Uplink {
            device_id: self.button.clone(),
            payload: Bytes::copy_from_slice(bytes),
            last_will: false,
        };
        self.core.process(vec![Input::Uplink(uplink)]);
    }

    fn press(&mut self, press_seq: u32) {
        let press = ButtonPress {
            pattern: PressPattern::Single,
            press_seq,
        };
        self.uplink(press_seq, Body::ButtonPress(press));
    }

    fn cancel(&mut self, press_seq: u32) {
        let cancel = CancelRequest {
            press_boot: BOOT,
            press_seq,
        };
        self.uplink(1_000 + press_seq, Body::CancelRequest(cancel));
    }

    fn heartbeat(&mut self, seq: u32) {
        let beat = Beat {
            uptime_s: seq,
            firmware: FirmwareVersion {
                major: 1,
                minor: 0,
                patch: 0,
            },
            battery_mv: 3_900,
            rssi_dbm: -60,
            free_heap: 100_000,
        };
        self.uplink(seq, Body::Heartbeat(beat));
    }

    fn last_will(&mut self) {
        let uplink = Uplink {
            device_id: self.button.clone(),
            payload: Bytes::new(),
            last_will: true,
        };
        self.core.process(vec![Input::Uplink(uplink)]);
    }

    fn staff(&mut self, alert: AlertId, verb: StaffVerb) -> Result<AlertView, CommandError> {
        let (reply, answer) = oneshot::channel();
        let request = Request::Transition {
            alert,
            verb,
            actor: Actor::new(Source::LocalDashboard, "ms-rivera"),
            note: None,
            reply,
        };
        self.core.process(vec![Input::Request(request)]);
        answer.blocking_recv().unwrap()
    }

    /// The one alert the button raised, as stored.
    fn alert(&self) -> AlertRow {
        let reader = Reader::open(&self.db).unwrap();
        let filter = crate::store::AlertFilter {
            limit: 10,
            ..crate::store::AlertFilter::default()
        };
        let mut all = reader.alerts(&filter).unwrap();
        assert_eq!(all.len(), 1, "one alert: {all:?}");
        all.remove(0)
    }

    /// Whether the stored health says the button is online.
    fn online(&self) -> bool {
        let reader = Reader::open(&self.db).unwrap();
        let devices = reader.devices().unwrap();
        devices.iter().find(|d| d.id == BUTTON).unwrap().online
    }

    /// The newest snapshot: when, after the start, and of which kind.
    fn newest_snapshot(&self) -> Option<(Duration, SnapshotKind)> {
        let (last, _) = self.core.store().snapshot_times().unwrap();
        last.map(|(at, kind)| {
            let after = u64::try_from(at.get() - T0).unwrap();
            (ms(after), kind.parse().unwrap())
        })
    }

    /// The state of the newest `PressAck` sent to the button.
    fn last_ack(&self) -> Option<AckState> {
        let frames = self.out.frames.lock().unwrap();
        frames.iter().rev().find_map(|(device, bytes)| {
            assert_eq!(device, &self.button);
            match decode_downlink(bytes).unwrap().body {
                Downlink::PressAck(ack) => Some(ack.state),
                _ => None,
            }
        })
    }
}

#[test]
fn an_alert_escalates_exactly_when_nobody_acknowledged_it_in_time() {
    // (acknowledged at, looked at, state then, escalated)
    let cases = [
        (None, ms(59_999), AlertState::Triggered, false),
        (None, s(60), AlertState::Escalated, true),
        (None, s(600), AlertState::Escalated, true),
        (Some(s(30)), s(60), AlertState::Acknowledged, false),
        (Some(ms(59_999)), s(120), AlertState::Acknowledged, false),
        (Some(s(61)), s(61), AlertState::Acknowledged, true),
    ];
    for (acknowledged, looked, want, escalated) in cases {
        let mut h = Harness::new(|c| c.alerts.escalate_after = s(60));
        h.press(1);
        let raised = h.alert();
        let severity = raised.severity;
        assert_eq!(raised.created_at, UnixMillis::new(T0));
        if let Some(at) = acknowledged {
            h.run_until(at);
            h.staff(raised.id, StaffVerb::Acknowledge).unwrap();
        }
        h.run_until(looked);
        let alert = h.alert();
        let case = format!("acknowledged {acknowledged:?}, looked at {looked:?}");
        assert_eq!(alert.state, want, "{case}");
        assert_eq!(alert.escalated_at.is_some(), escalated, "{case}");
        if escalated {
            assert_eq!(
                alert.escalated_at,
                Some(UnixMillis::new(T0 + 60_000)),
                "{case}"
            );
            assert!(alert.severity > severity, "{case}: severity raised");
        } else {
            assert_eq!(alert.severity, severity, "{case}");
        }
    }
}

#[test]
fn the_presser_may_cancel_only_within_the_window() {
    // (cancel sent at, the alert's state after, what the button is told)
    let cases = [
        (Duration::ZERO, AlertState::Cancelled, AckState::Cancelled),
        (s(5), AlertState::Cancelled, AckState::Cancelled),
        (s(10), AlertState::Cancelled, AckState::Cancelled),
        (ms(10_001), AlertState::Triggered, AckState::Received),
        (s(30), AlertState::Triggered, AckState::Received),
    ];
    for (sent, want, told) in cases {
        let mut h = Harness::new(|c| {
            c.alerts.cancel_window = s(10);
            c.alerts.escalate_after = s(3_600);
        });
        h.press(1);
        assert_eq!(h.last_ack(), Some(AckState::Received));
        h.run_until(sent);
        h.cancel(1);
        assert_eq!(h.alert().state, want, "cancel at {sent:?}");
        assert_eq!(h.last_ack(), Some(told), "cancel at {sent:?}");
    }
}

#[test]
fn a_wall_clock_stepped_back_before_the_press_still_counts_as_within_the_window() {
    let mut h = Harness::new(|c| c.alerts.cancel_window = s(10));
    h.press(1);
    h.clock.set_wall(UnixMillis::new(T0 - 3_600_000));
    h.cancel(1);
    assert_eq!(h.alert().state, AlertState::Cancelled);
}

#[test]
fn a_device_goes_offline_after_its_missed_heartbeats_and_not_before() {
    // (heartbeats sent at, looked at, online then); three missed 30 s heartbeats = 90 s.
    let cases: [(&[u64], Duration, bool); 6] = [
        (&[], s(200), false),
        (&[0], ms(89_999), true),
        (&[0], s(90), false),
        (&[0, 30, 60], ms(149_999), true),
        (&[0, 30, 60], s(150), false),
        (&[0, 100], s(180), true),
    ];
    for (beats, looked, want) in cases {
        let mut h = Harness::new(|c| {
            c.health.heartbeat_interval = s(30);
            c.health.policy.offline_after = s(90);
        });
        for (seq, at) in beats.iter().enumerate() {
            h.run_until(s(*at));
            h.heartbeat(u32::try_from(seq).unwrap());
        }
        h.run_until(looked);
        assert_eq!(
            h.online(),
            want,
            "heartbeats at {beats:?}, looked at {looked:?}"
        );
    }
}

#[test]
fn a_last_will_takes_a_device_offline_at_once_and_a_frame_brings_it_back() {
    let mut h = Harness::new(|_| {});
    h.heartbeat(1);
    assert!(h.online());
    h.run_until(s(1));
    h.last_will();
    assert!(!h.online());
    h.run_until(s(2));
    h.heartbeat(2);
    assert!(h.online());
}

#[test]
fn snapshots_follow_their_schedule() {
    // (moment, what happens then, the newest snapshot afterwards); debounce 1 s, heartbeat
    // 30 s, full every 300 s. A press opens an alert and brings the button online: a change.
    enum Step {
        Tick,
        Press,
    }
    let heartbeat = SnapshotKind::Heartbeat;
    let change = SnapshotKind::Change;
    let scheduled = SnapshotKind::Scheduled;
    let steps = [
        (
            Duration::ZERO,
            Step::Tick,
            Some((Duration::ZERO, scheduled)),
        ),
        (ms(29_999), Step::Tick, Some((Duration::ZERO, scheduled))),
        (s(30), Step::Tick, Some((s(30), heartbeat))),
        (s(40), Step::Press, Some((s(30), heartbeat))),
        (ms(40_999), Step::Tick, Some((s(30), heartbeat))),
        (s(41), Step::Tick, Some((s(41), change))),
        (ms(70_999), Step::Tick, Some((s(41), change))),
        (s(71), Step::Tick, Some((s(71), heartbeat))),
        (s(101), Step::Tick, Some((s(101), heartbeat))),
        (s(300), Step::Tick, Some((s(300), scheduled))),
    ];
    let mut h = Harness::new(|c| {
        c.snapshots.debounce = s(1);
        c.snapshots.heartbeat = s(30);
        c.snapshots.full = s(300);
        // Neither an escalation nor the button going offline adds a change to this table.
        c.alerts.escalate_after = s(3_600);
        c.health.policy.offline_after = s(3_600);
    });
    assert_eq!(h.newest_snapshot(), None);
    for (at, step, want) in steps {
        h.run_until(at);
        match step {
            Step::Tick => h.tick(),
            Step::Press => h.press(1),
        }
        assert_eq!(h.newest_snapshot(), want, "at {at:?}");
    }
}
