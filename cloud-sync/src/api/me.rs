//! `GET /api/v1/me`: who the caller is, their roles, whether their second factor is off,
//! pending or active, and the schools their scope covers (read under that scope, so
//! row-level security answers, not this handler).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, AppState, Caller};
use crate::db::{self, Reach};

/// `GET /api/v1/me`: the caller, their roles and the schools of their scope.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = Object),
        (status = 401, description = "No valid access token")))]
pub(super) async fn me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let schools = db::accounts::schools_in_scope(&state.pool, &caller.scope).await?;
    let totp = db::totp::state(&state.pool, caller.user_id).await?;
    let roles: Vec<Value> = caller
        .grants
        .iter()
        .map(|g| {
            json!({
                "role": g.role().as_str(),
                "region_id": g.region(),
                "school_id": g.school(),
            })
        })
        .collect();
    Ok(Json(json!({
        "user_id": caller.user_id,
        "email": caller.email.as_str(),
        "roles": roles,
        "totp": totp.as_str(),
        "scope": {
            "all_schools": caller.scope.reach == Reach::All,
            "read_only": caller.scope.read_only,
            "schools": schools,
        },
    })))
}
