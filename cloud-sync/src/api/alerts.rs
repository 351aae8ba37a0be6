//! `/api/v1/alerts`: lists with filters, one alert with its history, the actions people ask
//! the school to take (acknowledge, resolve: commands the gateway confirms), notes,
//! statistics and exports.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use shared::alert::{AlertKind, AlertState};
use shared::ids::{AlertId, SchoolId};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::caller::Capability;
use super::directory::period;
use super::extract::{Body, Path, Query};
use super::page::{Page, PageParams};
use super::schema::{AlertKindName, AlertStateName, ExportFormat};
use super::{ApiError, AppState, Caller};
use crate::db::alerts::{self, Alert, AlertDetail, AlertFilter, Note, SchoolStatistics};
use crate::db::audit::AuditEntry;
use crate::db::commands::{self, AlertAction};
use crate::db::{self, TenantScope};

/// The most rows one export holds; a larger one is refused with a hint to narrow it.
pub(super) const MAX_EXPORT_ROWS: u32 = 50_000;
/// The longest note.
pub(super) const MAX_NOTE_CHARS: usize = 2_000;

/// Filters of `GET /api/v1/alerts`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AlertsQuery {
    /// Only alerts in this state.
    #[param(value_type = Option<AlertStateName>, inline)]
    state: Option<String>,
    /// Only alerts of this kind.
    #[param(value_type = Option<AlertKindName>, inline)]
    kind: Option<String>,
    /// Only this school's alerts.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64)]
    school_id: Option<SchoolId>,
    /// Opened at or after (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Opened before (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

impl AlertsQuery {
    /// The filter, each value checked; a school outside the scope answers 404.
    async fn filter(&self, state: &AppState, caller: &Caller) -> Result<AlertFilter, ApiError> {
        if let Some(s) = &self.state {
            s.parse::<AlertState>()
                .map_err(|e| ApiError::bad_request("invalid_query", format!("state: {e}")))?;
        }
        if let Some(k) = &self.kind {
            k.parse::<AlertKind>()
                .map_err(|e| ApiError::bad_request("invalid_query", format!("kind: {e}")))?;
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(ApiError::bad_request(
                "invalid_query",
                "from must be before to",
            ));
        }
        if let Some(school) = &self.school_id {
            caller.reach_school(state, school).await?;
        }
        Ok(AlertFilter {
            state: self.state.clone(),
            kind: self.kind.clone(),
            school: self.school_id.clone(),
            from: self.from,
            to: self.to,
        })
    }
}

/// `GET /api/v1/alerts`: alerts in scope, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    security(("bearer" = [])), params(AlertsQuery),
    responses((status = 200, body = Page<Alert>, description = "One page of alerts, newest first"),
        (status = 400, description = "A filter is invalid")))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AlertsQuery>,
) -> Result<Json<Page<Alert>>, ApiError> {
    let page = PageParams {
        cursor: query.cursor.clone(),
        limit: query.limit,
    };
    let limit = page.limit()?;
    let after = page.after()?;
    let filter = query.filter(&state, &caller).await?;
    let rows = alerts::list(&state.pool, &caller.scope, &filter, after, limit + 1).await?;
    Ok(Json(Page::from_rows(rows, limit, alerts::key)))
}

/// `GET /api/v1/alerts/{alert_id}`: one alert with its events, notes and requests.
#[utoipa::path(get, path = "/api/v1/alerts/{alert_id}", tag = "alerts",
    security(("bearer" = [])),
    params(("alert_id" = Uuid, Path, description = "An alert id")),
    responses((status = 200, body = AlertDetail, description = "The alert with its events, notes and requests"),
        (status = 404, description = "No such alert in scope")))]
pub(super) async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    Path(alert): Path<Uuid>,
) -> Result<Json<AlertDetail>, ApiError> {
    match alerts::detail(&state.pool, &caller.scope, alert).await? {
        Some(detail) => Ok(Json(detail)),
        None => Err(caller.alert_not_found(&state, alert).await),
    }
}

/// The answer to an action: the request is on its way to the school, which confirms it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Requested {
    /// The command the gateway will apply (once, however often it is delivered).
    command_id: Uuid,
    /// Always `requested`: the alert's state changes when the school confirms.
    status: &'static str,
}

/// `POST /api/v1/alerts/{alert_id}/acknowledge`.
#[utoipa::path(post, path = "/api/v1/alerts/{alert_id}/acknowledge", tag = "alerts",
    security(("bearer" = [])),
    params(("alert_id" = Uuid, Path, description = "An alert id")),
    responses((status = 202, body = Requested, description = "Sent to the school, which confirms it"),
        (status = 403, description = "Viewers cannot act"),
        (status = 404, description = "No such alert in scope"),
        (status = 409, description = "The alert is closed")))]
pub(super) async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Path(alert): Path<Uuid>,
) -> Result<(StatusCode, Json<Requested>), ApiError> {
    act(&state, &caller, alert, AlertAction::Acknowledge).await
}

/// `POST /api/v1/alerts/{alert_id}/resolve`.
#[utoipa::path(post, path = "/api/v1/alerts/{alert_id}/resolve", tag = "alerts",
    security(("bearer" = [])),
    params(("alert_id" = Uuid, Path, description = "An alert id")),
    responses((status = 202, body = Requested, description = "Sent to the school, which confirms it"),
        (status = 403, description = "Viewers cannot act"),
        (status = 404, description = "No such alert in scope"),
        (status = 409, description = "The alert is closed")))]
pub(super) async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(alert): Path<Uuid>,
) -> Result<(StatusCode, Json<Requested>), ApiError> {
    act(&state, &caller, alert, AlertAction::Resolve).await
}

async fn act(
    state: &AppState,
    caller: &Caller,
    alert: Uuid,
    action: AlertAction,
) -> Result<(StatusCode, Json<Requested>), ApiError> {
    let Some((school, current)) = alerts::state_of(&state.pool, &caller.scope, alert).await? else {
        return Err(caller.alert_not_found(state, alert).await);
    };
    caller.require(state, Capability::Act).await?;
    let closed = || {
        ApiError::conflict(
            "alert_closed",
            format!("the alert is {current}; only open alerts take actions"),
        )
    };
    if current.parse::<AlertState>().is_ok_and(|s| !s.is_open()) {
        return Err(closed());
    }
    let by = db::accounts::user_actor(caller.user_id);
    let command = commands::request_alert_action(
        &state.pool,
        caller.scope.scope(),
        &school,
        AlertId::from_uuid(alert).map_err(|_| ApiError::not_found("alert"))?,
        action,
        &by,
    )
    .await?
    .ok_or_else(closed)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Requested {
            command_id: *command.as_uuid(),
            status: "requested",
        }),
    ))
}

/// A note to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewNote {
    /// One to 2,000 characters, not all of them white space (leading and trailing white
    /// space is dropped).
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    body: String,
}

/// `POST /api/v1/alerts/{alert_id}/notes`.
#[utoipa::path(post, path = "/api/v1/alerts/{alert_id}/notes", tag = "alerts",
    security(("bearer" = [])),
    params(("alert_id" = Uuid, Path, description = "An alert id")),
    request_body = NewNote,
    responses((status = 201, body = Note, description = "The note, added"),
        (status = 400, description = "Empty or too long"),
        (status = 403, description = "Viewers cannot act"),
        (status = 404, description = "No such alert in scope")))]
pub(super) async fn add_note(
    State(state): State<AppState>,
    caller: Caller,
    Path(alert): Path<Uuid>,
    Body(note): Body<NewNote>,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    let body = note.body.trim();
    let chars = body.chars().count();
    if chars == 0 || chars > MAX_NOTE_CHARS {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("a note has 1 to {MAX_NOTE_CHARS} characters, not {chars}"),
        ));
    }
    if alerts::state_of(&state.pool, &caller.scope, alert)
        .await?
        .is_none()
    {
        return Err(caller.alert_not_found(&state, alert).await);
    }
    caller.require(&state, Capability::Act).await?;
    let author = db::accounts::user_actor(caller.user_id);
    match alerts::add_note(&state.pool, &caller.scope, alert, &author, body).await? {
        Some(note) => Ok((StatusCode::CREATED, Json(note))),
        None => Err(ApiError::not_found("alert")),
    }
}

/// Filters of `GET /api/v1/alerts/statistics`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct StatisticsQuery {
    /// Only this school.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64)]
    school_id: Option<SchoolId>,
    /// Opened at or after (RFC 3339); default 30 days before `to`.
    from: Option<DateTime<Utc>>,
    /// Opened before (RFC 3339); default now.
    to: Option<DateTime<Utc>>,
}

/// `GET /api/v1/alerts/statistics`: per school, alerts by kind and state and the median
/// times to acknowledge and resolve.
#[utoipa::path(get, path = "/api/v1/alerts/statistics", tag = "alerts",
    security(("bearer" = [])), params(StatisticsQuery),
    responses((status = 200, body = Vec<SchoolStatistics>, description = "Per school in scope"),
        (status = 400, description = "A filter is invalid, or the period is empty or too long")))]
pub(super) async fn statistics(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<StatisticsQuery>,
) -> Result<Json<Vec<SchoolStatistics>>, ApiError> {
    let period = period(query.from, query.to, Duration::days(30))?;
    if let Some(school) = &query.school_id {
        caller.reach_school(&state, school).await?;
    }
    Ok(Json(
        alerts::statistics(&state.pool, &caller.scope, query.school_id.as_ref(), period).await?,
    ))
}

/// Filters of `GET /api/v1/alerts/export`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ExportQuery {
    /// What the export is written as.
    #[param(value_type = ExportFormat, inline)]
    format: String,
    /// Only alerts in this state.
    #[param(value_type = Option<AlertStateName>, inline)]
    state: Option<String>,
    /// Only alerts of this kind.
    #[param(value_type = Option<AlertKindName>, inline)]
    kind: Option<String>,
    /// Only this school's alerts.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64)]
    school_id: Option<SchoolId>,
    /// Opened at or after (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Opened before (RFC 3339).
    to: Option<DateTime<Utc>>,
}

/// `GET /api/v1/alerts/export?format=csv|json`: every alert matching the filters (at most
/// 50,000; narrow the filters for more), as a download. Audited.
#[utoipa::path(get, path = "/api/v1/alerts/export", tag = "alerts",
    security(("bearer" = [])), params(ExportQuery),
    responses((status = 200, description = "CSV (text/csv) or a JSON array of alerts", body = Vec<Alert>),
        (status = 400, description = "Unknown format, invalid filter, or more rows than one export holds")))]
pub(super) async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let csv = match query.format.as_str() {
        "csv" => true,
        "json" => false,
        other => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("format must be csv or json, not {other:?}"),
            ));
        }
    };
    let filter = AlertsQuery {
        state: query.state,
        kind: query.kind,
        school_id: query.school_id,
        from: query.from,
        to: query.to,
        cursor: None,
        limit: None,
    }
    .filter(&state, &caller)
    .await?;
    let rows = alerts::list(
        &state.pool,
        &caller.scope,
        &filter,
        None,
        MAX_EXPORT_ROWS + 1,
    )
    .await?;
    if rows.len() > MAX_EXPORT_ROWS as usize {
        return Err(ApiError::bad_request(
            "too_many_rows",
            format!(
                "more than {MAX_EXPORT_ROWS} alerts match; narrow the period or filter by school"
            ),
        ));
    }
    let entry = AuditEntry {
        school_id: filter.school.as_ref(),
        actor: db::accounts::user_actor(caller.user_id),
        action: "export_alerts",
        outcome: "ok",
        detail: serde_json::json!({ "format": query.format, "rows": rows.len() }),
    };
    db::audit::record_alone(&state.pool, &entry).await?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    if csv {
        let body = to_csv(&rows).map_err(|e| ApiError::internal(&e))?;
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"alerts-{stamp}.csv\""),
                ),
            ],
            body,
        )
            .into_response())
    } else {
        Ok((
            [(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"alerts-{stamp}.json\""),
            )],
            Json(rows),
        )
            .into_response())
    }
}

fn to_csv(rows: &[Alert]) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "alert_id",
        "school_id",
        "gateway_id",
        "kind",
        "severity",
        "state",
        "device_id",
        "room",
        "press_count",
        "opened_at",
        "updated_at",
        "requested",
    ])?;
    for a in rows {
        out.write_record([
            a.alert_id.to_string(),
            a.school_id.clone(),
            a.gateway_id.clone(),
            a.kind.clone(),
            a.severity.clone(),
            a.state.clone(),
            a.device_id.clone().unwrap_or_default(),
            csv_safe(a.room.as_deref().unwrap_or_default()),
            a.press_count.to_string(),
            a.opened_at.to_rfc3339(),
            a.updated_at.to_rfc3339(),
            a.requested.clone().unwrap_or_default(),
        ])?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

/// A cell a spreadsheet would read as a formula (`=`, `+`, `-`, `@` first) gets a leading
/// quote, so an exported room name cannot run anything when opened.
fn csv_safe(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(csv_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_safe("Room 12"), "Room 12");
        assert_eq!(csv_safe("-1"), "'-1");
    }
}
