//! `/api/v1/alerts`: the list, one alert with its history, and staff actions.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use shared::alert::{Actor, AlertState, Source};
use shared::ids::AlertId;
use tokio::sync::oneshot;

use super::{ApiError, ApiState};
use crate::engine::{Request, StaffVerb};
use crate::store::AlertFilter;
use crate::view::{AlertDetail, AlertEventView, AlertView};

/// Most alerts one page lists.
const MAX_LIMIT: u32 = 500;
/// Longest note or name accepted with an action, in characters.
const MAX_NOTE_CHARS: usize = 1_000;
const MAX_BY_CHARS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// `open`, or a comma-separated list of states.
    state: Option<String>,
    limit: Option<u32>,
    /// Page: alerts raised before this one.
    before: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct AlertList {
    alerts: Vec<AlertView>,
}

/// `GET /api/v1/alerts?state=open&limit=100&before=<id>`: newest first.
pub(super) async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AlertList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = AlertFilter {
        states: parse_states(query.state.as_deref())?,
        limit: match query.limit {
            None => 100,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "limit {n} is outside 1..={MAX_LIMIT}"
                )));
            }
        },
        before: query.before.as_deref().map(parse_id).transpose()?,
    };
    let rows = state.read(move |db| db.alerts(&filter)).await?;
    Ok(Json(AlertList {
        alerts: rows.iter().map(AlertView::from).collect(),
    }))
}

/// `GET /api/v1/alerts/{id}`: the alert and its log.
pub(super) async fn detail(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<AlertDetail>, ApiError> {
    let id = parse_id(&id)?;
    let found = state
        .read(move |db| {
            Ok(match db.alert(&id)? {
                Some(alert) => Some((alert, db.alert_events(&id)?)),
                None => None,
            })
        })
        .await?;
    let (alert, events) = found.ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    Ok(Json(AlertDetail {
        alert: AlertView::from(&alert),
        events: events.iter().map(AlertEventView::from).collect(),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActBody {
    /// Who is acting, for the log (the token is shared by the front office).
    by: Option<String>,
    /// Why, for the log.
    note: Option<String>,
}

/// `POST /api/v1/alerts/{id}/acknowledge|resolve|cancel`, optional body
/// `{"by": "…", "note": "…"}`: answered once the change is committed.
pub(super) async fn act(
    State(state): State<ApiState>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<AlertView>, ApiError> {
    let verb = match action.as_str() {
        "acknowledge" => StaffVerb::Acknowledge,
        "resolve" => StaffVerb::Resolve,
        "cancel" => StaffVerb::Cancel,
        other => {
            return Err(ApiError::not_found(format!(
                "unknown action {other:?} (acknowledge, resolve, cancel)"
            )));
        }
    };
    let id = parse_id(&id)?;
    let body: ActBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let by = bounded("by", body.by, MAX_BY_CHARS)?.unwrap_or_else(|| "front office".into());
    let note = bounded("note", body.note, MAX_NOTE_CHARS)?;
    let (reply, answer) = oneshot::channel();
    state.engine.send(Request::Transition {
        alert: id,
        verb,
        actor: Actor::new(Source::LocalDashboard, by),
        note,
        reply,
    })?;
    let outcome = answer
        .await
        .map_err(|_| ApiError::internal(&"the engine dropped the request"))?;
    Ok(Json(outcome?))
}

fn bounded(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        Some(v) if v.chars().count() > max => Err(ApiError::bad_request(format!(
            "{field} is longer than {max} characters"
        ))),
        Some(v) if v.chars().any(|c| c.is_control() && c != '\n') => Err(ApiError::bad_request(
            format!("{field} contains control characters"),
        )),
        other => Ok(other),
    }
}

fn parse_id(text: &str) -> Result<AlertId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("{text:?} is not an alert id")))
}

fn parse_states(text: Option<&str>) -> Result<Vec<AlertState>, ApiError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let mut states = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name == "open" {
            states.extend(AlertState::ALL.iter().filter(|s| s.is_open()));
        } else {
            states.push(name.parse::<AlertState>().map_err(|e| {
                ApiError::bad_request(format!(
                    "{e} (open, triggered, escalated, acknowledged, resolved, cancelled)"
                ))
            })?);
        }
    }
    Ok(states)
}
