//! The JSON shapes people's software sees: the local API's bodies, the dashboard stream's
//! `data:` and the integrations' MQTT messages. One shape per noun, so the three agree.
//!
//! Enums are their stable text names (`shared`'s `as_str`), times are Unix milliseconds.

use serde::{Deserialize, Serialize};

use crate::store::{AlertEventRow, AlertRow, DeviceStatusRow, SnapshotRow};

/// An alert as the dashboard and integrations see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertView {
    pub id: String,
    pub kind: &'static str,
    pub severity: &'static str,
    pub state: &'static str,
    pub device_id: Option<String>,
    pub room: Option<String>,
    pub building: Option<String>,
    pub floor: Option<String>,
    pub press_count: u32,
    pub created_at: i64,
    pub updated_at: i64,
    pub acknowledged_at: Option<i64>,
    pub escalated_at: Option<i64>,
    pub closed_at: Option<i64>,
}

/// One entry of an alert's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertEventView {
    pub id: i64,
    pub at: i64,
    pub event: &'static str,
    pub state: &'static str,
    pub severity: &'static str,
    pub press_count: u32,
    pub actor: Option<ActorView>,
    pub note: Option<String>,
}

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActorView {
    pub source: &'static str,
    pub name: String,
}

/// An alert with its history (`GET /api/v1/alerts/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertView,
    pub events: Vec<AlertEventView>,
}

impl From<&AlertRow> for AlertView {
    fn from(row: &AlertRow) -> AlertView {
        AlertView {
            id: row.id.to_string(),
            kind: row.kind.as_str(),
            severity: row.severity.as_str(),
            state: row.state.as_str(),
            device_id: row.device_id.as_ref().map(ToString::to_string),
            room: row.room.clone(),
            building: row.building.clone(),
            floor: row.floor.clone(),
            press_count: row.press_count,
            created_at: row.created_at.get(),
            updated_at: row.updated_at.get(),
            acknowledged_at: row.acknowledged_at.map(|t| t.get()),
            escalated_at: row.escalated_at.map(|t| t.get()),
            closed_at: row.closed_at.map(|t| t.get()),
        }
    }
}

impl From<&AlertEventRow> for AlertEventView {
    fn from(row: &AlertEventRow) -> AlertEventView {
        AlertEventView {
            id: row.id,
            at: row.at.get(),
            event: row.event.as_str(),
            state: row.state.as_str(),
            severity: row.severity.as_str(),
            press_count: row.press_count,
            actor: row.actor.as_ref().map(|a| ActorView {
                source: a.source.as_str(),
                name: a.name.clone(),
            }),
            note: row.note.clone(),
        }
    }
}

/// A device and its health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceView {
    pub id: String,
    pub kind: String,
    pub room: String,
    /// `active` or `revoked`.
    pub state: String,
    /// `online`, `offline` or `never_seen`.
    pub status: &'static str,
    pub last_seen_at: Option<i64>,
    pub battery_mv: Option<u16>,
    pub rssi_dbm: Option<i8>,
    pub battery_low: bool,
    pub firmware: Option<String>,
}

impl From<&DeviceStatusRow> for DeviceView {
    fn from(row: &DeviceStatusRow) -> DeviceView {
        DeviceView {
            id: row.id.clone(),
            kind: row.kind.clone(),
            room: row.room.clone(),
            state: row.state.clone(),
            status: match (row.online, row.last_seen_at) {
                (true, _) => "online",
                (false, None) => "never_seen",
                (false, Some(_)) => "offline",
            },
            last_seen_at: row.last_seen_at.map(|t| t.get()),
            battery_mv: row.battery_mv,
            rssi_dbm: row.rssi_dbm,
            battery_low: row.battery_low,
            firmware: row.firmware.clone(),
        }
    }
}

/// A school snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotView {
    pub school_id: String,
    pub at: i64,
    /// `change`, `heartbeat` or `scheduled`.
    pub kind: String,
    pub students_total: u32,
    pub students_present: u32,
    pub students_absent: u32,
    pub teachers_present: u32,
    pub active_alerts: u32,
    pub devices_online: u32,
    pub devices_offline: u32,
    pub stale_rooms: Vec<String>,
}

impl From<&SnapshotRow> for SnapshotView {
    fn from(row: &SnapshotRow) -> SnapshotView {
        let s = &row.snapshot;
        SnapshotView {
            school_id: s.school_id.to_string(),
            at: s.at.get(),
            kind: row.kind.clone(),
            students_total: s.students_total,
            students_present: s.students_present,
            students_absent: s.students_absent,
            teachers_present: s.teachers_present,
            active_alerts: s.active_alerts,
            devices_online: s.devices_online,
            devices_offline: s.devices_offline,
            stale_rooms: row.stale_rooms.clone(),
        }
    }
}

/// The school summary for integrations (`hallwatch/status`): what is open right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusView {
    pub school_id: String,
    pub at: i64,
    pub active_alerts: u32,
    /// The most severe open alert's severity; `None` when all is quiet.
    pub highest_severity: Option<&'static str>,
    /// Open alerts, most severe first, then oldest; at most 100 (`active_alerts` counts all).
    pub alerts: Vec<AlertView>,
    pub devices_online: u32,
    pub devices_offline: u32,
}

/// Serializes a view; our views always serialize (no maps with non-string keys, no floats
/// that could be NaN), so a failure is a bug worth a log line, not a crash.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialize a view");
        "null".to_owned()
    })
}

/// The link to the cloud and what waits for it (`GET /api/v1/sync`, `edge-agent status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncView {
    /// `not_enrolled`, `misconfigured`, `connecting`, `up`, `down` or `refused`.
    pub link: String,
    /// The epoch this run of the agent writes its records under (hex).
    pub epoch: Option<String>,
    pub last_success_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    /// Failed attempts since the last success.
    pub failures: u32,
    pub last_error: Option<SyncErrorView>,
    /// One entry per lane, the alert lane first.
    pub lanes: Vec<LaneView>,
    /// Records the cloud refused, set aside in the dead-letter table.
    pub dead_letters: u64,
    /// When the outbox last outgrew its disk budget and dropped old telemetry.
    pub last_storage_pressure_at: Option<i64>,
}

/// The newest sync failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncErrorView {
    pub at: i64,
    pub message: String,
}

/// One lane's backlog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneView {
    pub lane: String,
    /// Records not yet acknowledged by the cloud.
    pub backlog: u64,
    pub backlog_bytes: u64,
    pub oldest_at: Option<i64>,
    /// Age of the oldest unacknowledged record, in seconds.
    pub oldest_age_s: Option<i64>,
}
