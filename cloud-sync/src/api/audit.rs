//! `GET /api/v1/audit`: the audit log within the caller's scope, for administrators: every
//! write, login and refusal. Platform entries (logins, scope refusals) are a superadmin's.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use shared::ids::SchoolId;
use utoipa::IntoParams;

use super::caller::Capability;
use super::extract::Query;
use super::page::{Page, PageParams};
use super::{ApiError, AppState, Caller};
use crate::db::audit::{self, AuditFilter, AuditRecord};

/// Filters of `GET /api/v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only this school's entries.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64)]
    school_id: Option<SchoolId>,
    /// Only this action (e.g. `login`, `request_alert_action`, `create_user`).
    #[param(max_length = 64)]
    action: Option<String>,
    /// At or after (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Before (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// `GET /api/v1/audit`: newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", operation_id = "list_audit",
    security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = Page<AuditRecord>, description = "One page of entries, newest first"),
        (status = 400, description = "A filter is invalid"),
        (status = 403, description = "Administrators only")))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Page<AuditRecord>>, ApiError> {
    caller.require(&state, Capability::Administer).await?;
    if let Some(school) = &query.school_id {
        caller.reach_school(&state, school).await?;
    }
    if query.action.as_ref().is_some_and(|a| a.len() > 64) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "action is at most 64 characters",
        ));
    }
    let page = PageParams {
        cursor: query.cursor,
        limit: query.limit,
    };
    let limit = page.limit()?;
    let filter = AuditFilter {
        school: query.school_id,
        action: query.action,
        from: query.from,
        to: query.to,
    };
    let rows = audit::list(&state.pool, &caller.scope, &filter, page.after()?, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |r| r.audit_id)))
}
