//! `/api/v1/snapshot`, `/api/v1/devices` and `/api/v1/sync`: the school's numbers, its
//! devices' health, and how the link to the cloud is doing.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::{ApiError, ApiState};
use crate::view::{DeviceView, SnapshotView, SyncView};

/// `GET /api/v1/snapshot`: the newest school snapshot (404 before the first is taken, a
/// moment after start).
pub(super) async fn snapshot(
    State(state): State<ApiState>,
) -> Result<Json<SnapshotView>, ApiError> {
    let school = state.school.clone();
    let row = state.read(move |db| db.latest_snapshot(&school)).await?;
    row.map(|row| Json(SnapshotView::from(&row)))
        .ok_or_else(|| ApiError::not_found("no snapshot has been taken yet"))
}

#[derive(Debug, Serialize)]
pub(super) struct DeviceList {
    devices: Vec<DeviceView>,
}

/// `GET /api/v1/devices`: every device, offline and low-battery ones first.
pub(super) async fn devices(State(state): State<ApiState>) -> Result<Json<DeviceList>, ApiError> {
    let rows = state.read(|db| db.devices()).await?;
    let mut devices: Vec<DeviceView> = rows.iter().map(DeviceView::from).collect();
    devices.sort_by_key(|d| (d.state != "active", d.status == "online" && !d.battery_low));
    Ok(Json(DeviceList { devices }))
}

/// `GET /api/v1/sync`: the link as the sync loop last found it, with each lane's backlog as
/// the outbox holds it now.
pub(super) async fn sync(State(state): State<ApiState>) -> Result<Json<SyncView>, ApiError> {
    let (backlog, dead_letters, pressure) = state
        .read(|db| {
            Ok((
                db.outbox_backlog()?,
                db.dead_letter_count()?,
                db.last_storage_pressure()?,
            ))
        })
        .await?;
    Ok(Json(SyncView::new(
        &state.sync.report(),
        &backlog,
        dead_letters,
        pressure,
        state.engine.clock().now(),
    )))
}
