//! Records as a gateway would produce them.

use shared::alert::{Actor, AlertEventKind, AlertKind, AlertState, Severity};
use shared::ids::{AlertId, CommandId, DeviceId, SchoolId, Seq};
use shared::sync::{
    AlertEventRecord, CommandOutcome, CommandResult, DeviceHealthRecord, DeviceStatus, DropReason,
    Dropped, Record, RecordBody,
};
use shared::{SchoolSnapshot, SnapshotCounts, UnixMillis};

/// 2026-11-21 08:00 UTC.
pub(crate) const MORNING: i64 = 1_795_248_000_000;

fn at(seq: u64) -> UnixMillis {
    UnixMillis::new(MORNING + i64::try_from(seq).expect("small") * 1000)
}

pub(crate) fn alert_event(seq: u64, alert: AlertId, state: AlertState) -> Record {
    let device: DeviceId = "btn-101".parse().expect("id");
    let event = match state {
        AlertState::Triggered => AlertEventKind::Triggered,
        AlertState::Escalated => AlertEventKind::Escalated,
        AlertState::Acknowledged => AlertEventKind::Acknowledged,
        AlertState::Resolved => AlertEventKind::Resolved,
        AlertState::Cancelled => AlertEventKind::Cancelled,
    };
    Record {
        seq: Seq::new(seq),
        at: at(seq),
        body: RecordBody::AlertEvent(AlertEventRecord {
            alert_id: alert,
            kind: AlertKind::Panic,
            severity: Severity::High,
            state,
            event,
            device_id: Some(device.clone()),
            room: Some("101".to_owned()),
            actor: Some(Actor::device(&device)),
            press_count: 1,
        }),
    }
}

pub(crate) fn health(seq: u64, device: &str) -> Record {
    Record {
        seq: Seq::new(seq),
        at: at(seq),
        body: RecordBody::DeviceHealth(DeviceHealthRecord {
            device_id: device.parse().expect("device id"),
            status: DeviceStatus::Online,
            battery_mv: Some(3000),
            rssi_dbm: Some(-60),
        }),
    }
}

pub(crate) fn snapshot(seq: u64, school: &SchoolId) -> Record {
    let counts = SnapshotCounts {
        students_total: 640,
        students_present: 600,
        teachers_present: 40,
        ..SnapshotCounts::default()
    };
    Record {
        seq: Seq::new(seq),
        at: at(seq),
        body: RecordBody::Snapshot(SchoolSnapshot::new(school.clone(), at(seq), counts)),
    }
}

pub(crate) fn command_result(seq: u64, command: CommandId) -> Record {
    Record {
        seq: Seq::new(seq),
        at: at(seq),
        body: RecordBody::CommandResult(CommandResult {
            command_id: command,
            outcome: CommandOutcome::Applied,
        }),
    }
}

/// Records `seq..=through` of a lane, removed unsent by the gateway.
pub(crate) fn dropped(seq: u64, through: u64, reason: DropReason) -> Record {
    Record {
        seq: Seq::new(seq),
        at: at(seq),
        body: RecordBody::Dropped(Dropped {
            through: Seq::new(through),
            reason,
        }),
    }
}

/// Alert events `first..=last`, each raising a new alert.
pub(crate) fn alert_events(first: u64, last: u64) -> Vec<Record> {
    (first..=last)
        .map(|seq| alert_event(seq, AlertId::new(), AlertState::Triggered))
        .collect()
}

/// Telemetry records `first..=last`, cycling through health reports of ten devices and snapshots.
pub(crate) fn telemetry(first: u64, last: u64, school: &SchoolId) -> Vec<Record> {
    (first..=last)
        .map(|seq| match seq % 5 {
            0 => snapshot(seq, school),
            n => health(seq, &format!("dev-{}", (seq + n) % 10)),
        })
        .collect()
}
