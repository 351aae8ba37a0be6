//! Fixtures shared by the sync tests: a realistic batch, a hand-made envelope, and proptest
//! strategies for arbitrary messages.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use proptest::prelude::*;
use shared::alert::{Actor, AlertEventKind, AlertKind, AlertState, Severity, Source};
use shared::ids::{AlertId, CommandId, DeviceId, Epoch, GatewayId, SchoolId, Seq};
use shared::sync::{
    AlertEventRecord, Command, CommandBody, CommandOutcome, CommandResult, DeviceHealthRecord,
    DeviceStatus, DropReason, Dropped, Lane, Record, RecordBody, SyncAck, SyncBatch,
};
use shared::{SchoolSnapshot, SnapshotCounts, UnixMillis};

/// 2024-09-03 07:30 UTC, the morning of a school day.
pub(crate) const MORNING: i64 = 1_725_348_600_000;

pub(crate) fn school() -> SchoolId {
    "lincoln-high".parse().expect("valid school id")
}

pub(crate) fn gateway() -> GatewayId {
    "gw-lincoln-high-01".parse().expect("valid gateway id")
}

/// A device id shaped like the firmware's: a prefix and the radio's hex serial.
pub(crate) fn device(n: u32) -> DeviceId {
    let serial = n.wrapping_mul(2_654_435_761) & 0x00ff_ffff;
    format!("pb-{serial:06x}").parse().expect("valid device id")
}

pub(crate) fn alert_id(n: u64) -> AlertId {
    let uuid = uuid::Builder::from_unix_timestamp_millis(MORNING as u64 + n, &[n as u8; 10]);
    AlertId::from_uuid(uuid.into_uuid()).expect("a version 7 uuid")
}

/// `n` records as a gateway would send them on an ordinary morning: mostly device health
/// reports from 40 buttons in no particular order, a snapshot every 5 records, and one alert
/// (trigger, press, acknowledge, resolve) in every 100. Timing, battery and signal carry
/// deterministic noise so the compression figure is not flattered by perfect repetition.
///
/// The mix is both lanes' records in one batch, which a gateway never sends (and the cloud
/// refuses); the codec does not care, and one batch keeps the size figure comparable.
pub(crate) fn realistic_batch(n: u32) -> SyncBatch {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut at = MORNING;
    let records = (0..n)
        .map(|i| {
            at += 1_000 + i64::from(noise.below(4_000));
            let at = UnixMillis::new(at);
            let body = match (i % 100, i % 5) {
                (10..=13, _) => alert_event(i),
                (_, 0) => snapshot(i, at),
                _ => health(noise.below(40), &mut noise),
            };
            Record {
                seq: Seq::new(u64::from(i) + 1),
                at,
                body,
            }
        })
        .collect();
    SyncBatch {
        gateway_id: gateway(),
        school_id: school(),
        epoch: epoch(),
        lane: Lane::Telemetry,
        records,
    }
}

/// A random-looking epoch, as a gateway draws them.
pub(crate) fn epoch() -> Epoch {
    Epoch::new(0x5eed_1e55_c0ff_ee42).expect("non-zero")
}

/// A xorshift generator: deterministic, dependency-free noise for fixtures.
struct Noise(u64);

impl Noise {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n)) as u32
    }
}

fn health(d: u32, noise: &mut Noise) -> RecordBody {
    let status = match (d, noise.below(50)) {
        (7, _) => DeviceStatus::BatteryLow,
        (_, 0) => DeviceStatus::Offline,
        _ => DeviceStatus::Online,
    };
    let battery = if d == 7 {
        2_310
    } else {
        2_900 + (d as u16 % 9) * 10
    };
    RecordBody::DeviceHealth(DeviceHealthRecord {
        device_id: device(d),
        status,
        battery_mv: Some(battery + noise.below(25) as u16),
        rssi_dbm: Some(-45 - (d as i8 % 30) - noise.below(8) as i8),
    })
}

fn snapshot(i: u32, at: UnixMillis) -> RecordBody {
    let counts = SnapshotCounts {
        students_total: 1_214,
        students_present: 1_130 + (i / 25).min(60),
        teachers_present: 87 + (i / 200).min(4),
        active_alerts: u32::from(i % 100 > 10 && i % 100 < 13),
        devices_online: 39,
        devices_offline: 1,
    };
    RecordBody::Snapshot(SchoolSnapshot::new(school(), at, counts))
}

fn alert_event(i: u32) -> RecordBody {
    let step = i % 100 - 10;
    let (event, state, actor) = match step {
        0 => (AlertEventKind::Triggered, AlertState::Triggered, None),
        1 => (AlertEventKind::Pressed, AlertState::Triggered, None),
        2 => (
            AlertEventKind::Acknowledged,
            AlertState::Acknowledged,
            Some(Actor::new(Source::LocalDashboard, "m.alvarez")),
        ),
        _ => (
            AlertEventKind::Resolved,
            AlertState::Resolved,
            Some(Actor::new(Source::LocalDashboard, "m.alvarez")),
        ),
    };
    RecordBody::AlertEvent(AlertEventRecord {
        alert_id: alert_id(u64::from(i / 100)),
        kind: AlertKind::Medical,
        severity: Severity::High,
        state,
        event,
        device_id: Some(device(i / 100 % 40)),
        room: Some("B-214".to_owned()),
        actor,
        press_count: 1 + u32::from(step >= 1),
    })
}

/// An ack carrying one command of every kind.
pub(crate) fn ack_with_every_command() -> SyncAck {
    let id = |n: u128| CommandId::from(uuid::Uuid::from_u128(n));
    SyncAck {
        acked_through: Seq::new(1_000),
        commands: vec![
            Command {
                id: id(1),
                body: CommandBody::Acknowledge {
                    alert_id: alert_id(1),
                    by: "principal".into(),
                },
            },
            Command {
                id: id(2),
                body: CommandBody::Resolve {
                    alert_id: alert_id(1),
                    by: "principal".into(),
                },
            },
            Command {
                id: id(3),
                body: CommandBody::RevokeDevice {
                    device_id: device(3),
                },
            },
            Command {
                id: id(4),
                body: CommandBody::Cancel {
                    alert_id: alert_id(2),
                    by: "district".into(),
                },
            },
        ],
    }
}

/// An envelope built by hand: the version, then `payload` compressed by zstd's one-shot API
/// (a different path from the crate's streaming encoder).
pub(crate) fn envelope(version: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = version.to_le_bytes().to_vec();
    bytes.extend(zstd::bulk::compress(payload, 3).expect("compress"));
    bytes
}

// === proptest strategies ===

fn text_id<T: std::str::FromStr + std::fmt::Debug>(max: usize) -> impl Strategy<Value = T>
where
    T::Err: std::fmt::Debug,
{
    proptest::string::string_regex(&format!("[A-Za-z0-9_-]{{1,{max}}}"))
        .expect("valid regex")
        .prop_map(|s| s.parse().expect("generated ids are valid"))
}

fn any_alert_id() -> impl Strategy<Value = AlertId> {
    (0u64..1 << 48, any::<[u8; 10]>()).prop_map(|(ms, random)| {
        let uuid = uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid();
        AlertId::from_uuid(uuid).expect("a version 7 uuid")
    })
}

fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(all)
}

fn any_actor() -> impl Strategy<Value = Actor> {
    (pick(Source::ALL), ".{0,12}").prop_map(|(source, name)| Actor { source, name })
}

fn any_body() -> impl Strategy<Value = RecordBody> {
    let alert = (
        any_alert_id(),
        (
            pick(AlertKind::ALL),
            pick(Severity::ALL),
            pick(AlertState::ALL),
        ),
        pick(AlertEventKind::ALL),
        proptest::option::of(text_id::<DeviceId>(32)),
        proptest::option::of(".{0,16}"),
        proptest::option::of(any_actor()),
        any::<u32>(),
    )
        .prop_map(
            |(alert_id, (kind, severity, state), event, device_id, room, actor, press_count)| {
                RecordBody::AlertEvent(AlertEventRecord {
                    alert_id,
                    kind,
                    severity,
                    state,
                    event,
                    device_id,
                    room,
                    actor,
                    press_count,
                })
            },
        );
    let health = (
        text_id::<DeviceId>(32),
        pick(DeviceStatus::ALL),
        any::<Option<u16>>(),
        any::<Option<i8>>(),
    )
        .prop_map(|(device_id, status, battery_mv, rssi_dbm)| {
            RecordBody::DeviceHealth(DeviceHealthRecord {
                device_id,
                status,
                battery_mv,
                rssi_dbm,
            })
        });
    let snapshot = (text_id::<SchoolId>(64), any::<i64>(), any::<[u32; 8]>()).prop_map(
        |(school_id, at, n)| {
            RecordBody::Snapshot(SchoolSnapshot {
                school_id,
                at: UnixMillis::new(at),
                students_total: n[0],
                students_present: n[1],
                students_absent: n[2],
                teachers_present: n[3],
                active_alerts: n[4],
                devices_online: n[5],
                devices_offline: n[6] ^ n[7],
            })
        },
    );
    let result = (any::<u128>(), proptest::option::of(".{0,24}")).prop_map(|(id, rejected)| {
        RecordBody::CommandResult(CommandResult {
            command_id: CommandId::from(uuid::Uuid::from_u128(id)),
            outcome: match rejected {
                None => CommandOutcome::Applied,
                Some(reason) => CommandOutcome::Rejected { reason },
            },
        })
    });
    let dropped = (any::<u64>(), pick(DropReason::ALL)).prop_map(|(through, reason)| {
        RecordBody::Dropped(Dropped {
            through: Seq::new(through),
            reason,
        })
    });
    prop_oneof![alert, health, snapshot, result, dropped]
}

pub(crate) fn any_batch() -> impl Strategy<Value = SyncBatch> {
    let record = (any::<u64>(), any::<i64>(), any_body()).prop_map(|(seq, at, body)| Record {
        seq: Seq::new(seq),
        at: UnixMillis::new(at),
        body,
    });
    (
        text_id::<GatewayId>(64),
        text_id::<SchoolId>(64),
        any::<u64>().prop_filter_map("epochs are never zero", Epoch::new),
        pick(Lane::ALL),
        proptest::collection::vec(record, 0..24),
    )
        .prop_map(|(gateway_id, school_id, epoch, lane, records)| SyncBatch {
            gateway_id,
            school_id,
            epoch,
            lane,
            records,
        })
}

pub(crate) fn any_ack() -> impl Strategy<Value = SyncAck> {
    let body = prop_oneof![
        (any_alert_id(), ".{0,12}")
            .prop_map(|(alert_id, by)| CommandBody::Acknowledge { alert_id, by }),
        (any_alert_id(), ".{0,12}")
            .prop_map(|(alert_id, by)| CommandBody::Resolve { alert_id, by }),
        text_id::<DeviceId>(32).prop_map(|device_id| CommandBody::RevokeDevice { device_id }),
        (any_alert_id(), ".{0,12}").prop_map(|(alert_id, by)| CommandBody::Cancel { alert_id, by }),
    ];
    let command = (any::<u128>(), body).prop_map(|(id, body)| Command {
        id: CommandId::from(uuid::Uuid::from_u128(id)),
        body,
    });
    (any::<u64>(), proptest::collection::vec(command, 0..12)).prop_map(|(seq, commands)| SyncAck {
        acked_through: Seq::new(seq),
        commands,
    })
}
