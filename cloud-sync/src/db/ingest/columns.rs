//! A batch's records turned into one array per column and kind, ready for `UNNEST`: the merge
//! sends each kind in one statement, whatever the batch size.

use shared::sync::{CommandOutcome, Record, RecordBody};
use uuid::Uuid;

/// Alert events, column by column.
#[derive(Debug, Default)]
pub(super) struct AlertColumns {
    pub seq: Vec<i64>,
    pub at: Vec<i64>,
    pub alert_id: Vec<Uuid>,
    pub kind: Vec<&'static str>,
    pub severity: Vec<&'static str>,
    pub state: Vec<&'static str>,
    pub event: Vec<&'static str>,
    pub device_id: Vec<Option<String>>,
    pub room: Vec<Option<String>>,
    pub actor_source: Vec<Option<&'static str>>,
    pub actor_name: Vec<Option<String>>,
    pub press_count: Vec<i32>,
}

/// Device health reports, column by column.
#[derive(Debug, Default)]
pub(super) struct HealthColumns {
    pub seq: Vec<i64>,
    pub at: Vec<i64>,
    pub device_id: Vec<String>,
    pub status: Vec<&'static str>,
    pub battery_mv: Vec<Option<i32>>,
    pub rssi_dbm: Vec<Option<i16>>,
}

/// School snapshots, column by column.
#[derive(Debug, Default)]
pub(super) struct SnapshotColumns {
    pub seq: Vec<i64>,
    pub taken_at: Vec<i64>,
    pub students_total: Vec<i32>,
    pub students_present: Vec<i32>,
    pub students_absent: Vec<i32>,
    pub teachers_present: Vec<i32>,
    pub active_alerts: Vec<i32>,
    pub devices_online: Vec<i32>,
    pub devices_offline: Vec<i32>,
}

/// Command results, column by column.
#[derive(Debug, Default)]
pub(super) struct ResultColumns {
    pub command_id: Vec<Uuid>,
    pub outcome: Vec<&'static str>,
    pub reason: Vec<Option<String>>,
}

/// Every kind's columns for one batch.
#[derive(Debug, Default)]
pub(super) struct Columns {
    pub alerts: AlertColumns,
    pub health: HealthColumns,
    pub snapshots: SnapshotColumns,
    pub results: ResultColumns,
}

impl Columns {
    /// Splits `records` by kind. Sequence numbers were checked to fit `i64` before.
    pub(super) fn from_records(records: &[Record]) -> Self {
        let mut c = Columns::default();
        for record in records {
            let seq = i64::try_from(record.seq.get()).unwrap_or(i64::MAX);
            let at = record.at.get();
            match &record.body {
                RecordBody::AlertEvent(e) => {
                    let a = &mut c.alerts;
                    a.seq.push(seq);
                    a.at.push(at);
                    a.alert_id.push(*e.alert_id.as_uuid());
                    a.kind.push(e.kind.as_str());
                    a.severity.push(e.severity.as_str());
                    a.state.push(e.state.as_str());
                    a.event.push(e.event.as_str());
                    a.device_id
                        .push(e.device_id.as_ref().map(|d| d.as_str().to_owned()));
                    a.room.push(e.room.clone());
                    a.actor_source
                        .push(e.actor.as_ref().map(|x| x.source.as_str()));
                    a.actor_name.push(e.actor.as_ref().map(|x| x.name.clone()));
                    a.press_count.push(clamp(e.press_count));
                }
                RecordBody::DeviceHealth(h) => {
                    let d = &mut c.health;
                    d.seq.push(seq);
                    d.at.push(at);
                    d.device_id.push(h.device_id.as_str().to_owned());
                    d.status.push(h.status.as_str());
                    d.battery_mv.push(h.battery_mv.map(i32::from));
                    d.rssi_dbm.push(h.rssi_dbm.map(i16::from));
                }
                RecordBody::Snapshot(s) => {
                    let p = &mut c.snapshots;
                    p.seq.push(seq);
                    p.taken_at.push(s.at.get());
                    p.students_total.push(clamp(s.students_total));
                    p.students_present.push(clamp(s.students_present));
                    p.students_absent.push(clamp(s.students_absent));
                    p.teachers_present.push(clamp(s.teachers_present));
                    p.active_alerts.push(clamp(s.active_alerts));
                    p.devices_online.push(clamp(s.devices_online));
                    p.devices_offline.push(clamp(s.devices_offline));
                }
                RecordBody::CommandResult(r) => {
                    let x = &mut c.results;
                    x.command_id.push(*r.command_id.as_uuid());
                    match &r.outcome {
                        CommandOutcome::Applied => {
                            x.outcome.push("applied");
                            x.reason.push(None);
                        }
                        CommandOutcome::Rejected { reason } => {
                            x.outcome.push("rejected");
                            x.reason.push(Some(reason.clone()));
                        }
                    }
                }
            }
        }
        c
    }
}

/// Counts are stored as `integer`; no school has two billion of anything.
fn clamp(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
