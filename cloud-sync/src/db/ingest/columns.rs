//! A batch's records turned into one array per column and kind, ready for `UNNEST`: the merge
//! sends each kind in one statement, whatever the batch size. Dropped runs become counts for
//! the cursor.

use shared::ids::Seq;
use shared::sync::{CommandOutcome, DropReason, Dropped, Record, RecordBody};
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

/// Records the gateway declared dropped, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct DroppedCounts {
    pub thinned: i64,
    pub storage_budget: i64,
    pub dead_lettered: i64,
}

/// Every kind's columns for one batch.
#[derive(Debug, Default)]
pub(super) struct Columns {
    pub alerts: AlertColumns,
    pub health: HealthColumns,
    pub snapshots: SnapshotColumns,
    pub results: ResultColumns,
    pub dropped: DroppedCounts,
}

impl Columns {
    /// Splits the new `records` by kind, the cursor being at `after` before them (a dropped
    /// run straddling it counts only its part beyond). Sequence numbers were checked to fit
    /// `i64` before.
    pub(super) fn from_records(records: &[Record], after: Seq) -> Self {
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
                RecordBody::Dropped(Dropped { through, reason }) => {
                    let first = record.seq.get().max(after.get().saturating_add(1));
                    let n = through.get().saturating_sub(first).saturating_add(1);
                    let n = i64::try_from(n).unwrap_or(i64::MAX);
                    let count = match reason {
                        DropReason::Thinned => &mut c.dropped.thinned,
                        DropReason::StorageBudget => &mut c.dropped.storage_budget,
                        DropReason::DeadLettered => &mut c.dropped.dead_lettered,
                    };
                    *count = count.saturating_add(n);
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

#[cfg(test)]
mod tests {
    use super::*;
    use shared::UnixMillis;

    fn dropped(seq: u64, through: u64, reason: DropReason) -> Record {
        Record {
            seq: Seq::new(seq),
            at: UnixMillis::new(0),
            body: RecordBody::Dropped(Dropped {
                through: Seq::new(through),
                reason,
            }),
        }
    }

    #[test]
    fn dropped_runs_are_counted_by_reason_and_only_beyond_the_cursor() {
        let records = [
            dropped(5, 9, DropReason::Thinned),
            dropped(10, 10, DropReason::StorageBudget),
            dropped(11, 20, DropReason::DeadLettered),
        ];
        let c = Columns::from_records(&records, Seq::new(4));
        assert_eq!(
            c.dropped,
            DroppedCounts {
                thinned: 5,
                storage_budget: 1,
                dead_lettered: 10
            }
        );
        let c = Columns::from_records(&records, Seq::new(7));
        assert_eq!(c.dropped.thinned, 2);
    }
}
