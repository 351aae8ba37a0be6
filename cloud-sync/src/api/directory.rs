//! `GET /api/v1/regions`, `/schools` and a school's rooms, devices and snapshots: what every
//! role reads within its scope.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use shared::ids::{RegionId, SchoolId};
use utoipa::IntoParams;

use super::extract::{Path, Query};
use super::page::{Page, PageParams};
use super::schema::DeviceStatusName;
use super::{ApiError, AppState, Caller};
use crate::auth::Grant;
use crate::db::directory::{self, Building, Device, Region, School, SchoolDetail, Snapshot};

/// The longest period one snapshot or statistics request may span.
pub(super) const MAX_PERIOD_DAYS: i64 = 366;

/// `GET /api/v1/regions`: the regions in scope.
#[utoipa::path(get, path = "/api/v1/regions", tag = "estate",
    security(("bearer" = [])),
    responses((status = 200, description = "Regions in scope", body = Vec<Region>)))]
pub(super) async fn regions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Region>>, ApiError> {
    let granted = granted_regions(&caller);
    Ok(Json(
        directory::regions(&state.pool, &caller.scope, &granted, None).await?,
    ))
}

/// `GET /api/v1/regions/{region_id}`.
#[utoipa::path(get, path = "/api/v1/regions/{region_id}", tag = "estate",
    security(("bearer" = [])),
    params(("region_id" = String, Path, description = "A region id", pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64)),
    responses((status = 200, body = Region, description = "The region"),
        (status = 404, description = "No such region in scope")))]
pub(super) async fn region(
    State(state): State<AppState>,
    caller: Caller,
    Path(region): Path<RegionId>,
) -> Result<Json<Region>, ApiError> {
    let granted = granted_regions(&caller);
    let found = directory::regions(&state.pool, &caller.scope, &granted, Some(&region)).await?;
    match found.into_iter().next() {
        Some(region) => Ok(Json(region)),
        None => {
            if directory::region_exists(&state.pool, &region).await? {
                let detail = serde_json::json!({ "region_id": region });
                caller.audit_refusal(&state, "out_of_scope", detail).await?;
            }
            Err(ApiError::not_found("region"))
        }
    }
}

fn granted_regions(caller: &Caller) -> Vec<RegionId> {
    caller
        .grants
        .iter()
        .filter_map(|g| match g {
            Grant::RegionAdmin(region) => Some(region.clone()),
            _ => None,
        })
        .collect()
}

/// Filters of `GET /api/v1/schools`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SchoolsQuery {
    /// Only this region's schools.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64)]
    region_id: Option<RegionId>,
    /// `next_cursor` of the previous page.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// `GET /api/v1/schools`: the schools in scope with their latest numbers and gateway status.
#[utoipa::path(get, path = "/api/v1/schools", tag = "estate",
    security(("bearer" = [])), params(SchoolsQuery),
    responses((status = 200, body = Page<School>, description = "One page of schools"),
        (status = 400, description = "A filter is invalid")))]
pub(super) async fn schools(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<SchoolsQuery>,
) -> Result<Json<Page<School>>, ApiError> {
    let page = PageParams {
        cursor: query.cursor,
        limit: query.limit,
    };
    let limit = page.limit()?;
    let after: Option<String> = page.after()?;
    let rows = directory::schools(
        &state.pool,
        &caller.scope,
        query.region_id.as_ref(),
        after.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |s| s.school_id.clone())))
}

/// `GET /api/v1/schools/{school_id}`.
#[utoipa::path(get, path = "/api/v1/schools/{school_id}", tag = "estate",
    security(("bearer" = [])),
    params(("school_id" = String, Path, description = "A school id", pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64)),
    responses((status = 200, body = SchoolDetail, description = "The school"),
        (status = 404, description = "No such school in scope")))]
pub(super) async fn school(
    State(state): State<AppState>,
    caller: Caller,
    Path(school): Path<SchoolId>,
) -> Result<Json<SchoolDetail>, ApiError> {
    caller.reach_school(&state, &school).await?;
    directory::school(&state.pool, &caller.scope, &school)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("school"))
}

/// `GET /api/v1/schools/{school_id}/rooms`: buildings, floors and rooms.
#[utoipa::path(get, path = "/api/v1/schools/{school_id}/rooms", tag = "estate",
    security(("bearer" = [])),
    params(("school_id" = String, Path, description = "A school id", pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64)),
    responses((status = 200, body = Vec<Building>, description = "Its buildings and their rooms"),
        (status = 404, description = "No such school in scope")))]
pub(super) async fn rooms(
    State(state): State<AppState>,
    caller: Caller,
    Path(school): Path<SchoolId>,
) -> Result<Json<Vec<Building>>, ApiError> {
    caller.reach_school(&state, &school).await?;
    Ok(Json(
        directory::rooms(&state.pool, &caller.scope, &school).await?,
    ))
}

/// Filters of `GET /api/v1/schools/{school_id}/devices`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DevicesQuery {
    /// Only devices in this status.
    #[param(value_type = Option<DeviceStatusName>, inline)]
    status: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// `GET /api/v1/schools/{school_id}/devices`: status, battery and last report per device.
#[utoipa::path(get, path = "/api/v1/schools/{school_id}/devices", tag = "estate",
    security(("bearer" = [])),
    params(("school_id" = String, Path, description = "A school id", pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64), DevicesQuery),
    responses((status = 200, body = Page<Device>, description = "One page of devices"),
        (status = 400, description = "A filter is invalid"),
        (status = 404, description = "No such school in scope")))]
pub(super) async fn devices(
    State(state): State<AppState>,
    caller: Caller,
    Path(school): Path<SchoolId>,
    Query(query): Query<DevicesQuery>,
) -> Result<Json<Page<Device>>, ApiError> {
    if let Some(status) = &query.status {
        status
            .parse::<shared::sync::DeviceStatus>()
            .map_err(|e| ApiError::bad_request("invalid_query", format!("status: {e}")))?;
    }
    caller.reach_school(&state, &school).await?;
    let page = PageParams {
        cursor: query.cursor,
        limit: query.limit,
    };
    let limit = page.limit()?;
    let after: Option<String> = page.after()?;
    let rows = directory::devices(
        &state.pool,
        &caller.scope,
        &school,
        query.status.as_deref(),
        after.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |d| d.device_id.clone())))
}

/// Filters of `GET /api/v1/schools/{school_id}/snapshots`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SnapshotsQuery {
    /// Taken at or after (RFC 3339); default 24 hours before `to`.
    from: Option<DateTime<Utc>>,
    /// Taken before (RFC 3339); default now.
    to: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// `GET /api/v1/schools/{school_id}/snapshots`: the school's numbers over time, newest first.
#[utoipa::path(get, path = "/api/v1/schools/{school_id}/snapshots", tag = "estate",
    security(("bearer" = [])),
    params(("school_id" = String, Path, description = "A school id", pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64), SnapshotsQuery),
    responses((status = 200, body = Page<Snapshot>, description = "One page of snapshots, newest first"),
        (status = 400, description = "A filter is invalid, or the period is empty or too long"),
        (status = 404, description = "No such school in scope")))]
pub(super) async fn snapshots(
    State(state): State<AppState>,
    caller: Caller,
    Path(school): Path<SchoolId>,
    Query(query): Query<SnapshotsQuery>,
) -> Result<Json<Page<Snapshot>>, ApiError> {
    let period = period(query.from, query.to, Duration::hours(24))?;
    caller.reach_school(&state, &school).await?;
    let page = PageParams {
        cursor: query.cursor,
        limit: query.limit,
    };
    let limit = page.limit()?;
    let rows = directory::snapshots(
        &state.pool,
        &caller.scope,
        &school,
        period,
        page.after()?,
        limit,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |s| {
        (s.headcount.taken_at, s.gateway_id.clone(), s.seq)
    })))
}

/// `[from, to)` from optional bounds: `to` defaults to now, `from` to `default_span` before
/// `to`; refused when empty or longer than [`MAX_PERIOD_DAYS`].
pub(super) fn period(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    default_span: Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = to.unwrap_or_else(Utc::now);
    let from = from.unwrap_or(to - default_span);
    if from >= to {
        return Err(ApiError::bad_request(
            "invalid_query",
            "from must be before to",
        ));
    }
    if to - from > Duration::days(MAX_PERIOD_DAYS) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("a period spans at most {MAX_PERIOD_DAYS} days; narrow from/to"),
        ));
    }
    Ok((from, to))
}
