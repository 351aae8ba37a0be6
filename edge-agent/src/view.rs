//! The JSON shapes people's software sees: the local API's bodies, the dashboard stream's
//! `data:` and the integrations' MQTT messages. One shape per noun, so the three agree.
//!
//! Enums are their stable text names (`shared`'s `as_str`), times are Unix milliseconds.

use serde::Serialize;

use crate::store::{AlertEventRow, AlertRow};

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

/// Serializes a view; our views always serialize (no maps with non-string keys, no floats
/// that could be NaN), so a failure is a bug worth a log line, not a crash.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialize a view");
        "null".to_owned()
    })
}
