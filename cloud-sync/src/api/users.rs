//! `/api/v1/users`: administrators manage the people of their scope. A superadmin manages
//! anyone; a region or school admin creates school admins and viewers at their schools and
//! disables people whose every grant lies within their scope. Viewers manage no one (403).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::ids::{RegionId, SchoolId};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::caller::Capability;
use super::extract::{Body, Path, Query};
use super::page::{Page, PageParams};
use super::schema::RoleName;
use super::{ApiError, AppState, Caller};
use crate::auth::{Email, Grant, Password, Role};
use crate::db::users::{self, User};
use crate::db::{self, DbError};

/// Filters of `GET /api/v1/users`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct UsersQuery {
    /// Only people with a grant at this school.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64)]
    school_id: Option<SchoolId>,
    /// `next_cursor` of the previous page.
    #[param(max_length = 512)]
    cursor: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// `GET /api/v1/users`: people holding a grant in the caller's scope, by address.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", operation_id = "list_users",
    security(("bearer" = [])), params(UsersQuery),
    responses((status = 200, body = Page<User>, description = "One page of people, by address"),
        (status = 400, description = "A filter is invalid"),
        (status = 403, description = "Administrators only")))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<UsersQuery>,
) -> Result<Json<Page<User>>, ApiError> {
    caller.require(&state, Capability::Administer).await?;
    if let Some(school) = &query.school_id {
        caller.reach_school(&state, school).await?;
    }
    let page = PageParams {
        cursor: query.cursor,
        limit: query.limit,
    };
    let limit = page.limit()?;
    let after: Option<String> = page.after()?;
    let rows = users::list(
        &state.pool,
        &caller.scope,
        query.school_id.as_ref(),
        after.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |u| u.email.clone())))
}

/// A person to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    /// Their address (compared case-insensitively): one `@`, a dotted domain, no white space
    /// or control characters, at most 254 bytes.
    #[schema(
        max_length = 254,
        pattern = "^[^@\\s\\u0000-\\u001f\\u007f-\\u009f]+@[^@\\s\\u0000-\\u001f\\u007f-\\u009f.]+(\\.[^@\\s\\u0000-\\u001f\\u007f-\\u009f.]+)+$"
    )]
    email: String,
    /// At least 12 characters, at most 1024 bytes, one line.
    #[schema(min_length = 12, max_length = 1024, pattern = "^[^\\r\\n]*$")]
    password: String,
    /// The role granted; `superadmin` and `region_admin` are granted by a superadmin only.
    #[schema(value_type = RoleName, inline)]
    role: String,
    /// For a region admin (and only for one).
    #[schema(pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64)]
    region_id: Option<String>,
    /// For a school admin or viewer (and only for them).
    #[schema(pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 64)]
    school_id: Option<String>,
}

/// The new person's id.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Created {
    /// Their id.
    user_id: Uuid,
}

/// `POST /api/v1/users`: adds a person with one grant within the caller's scope.
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    security(("bearer" = [])), request_body = NewUser,
    responses((status = 201, body = Created, description = "Added"),
        (status = 400, description = "Invalid field"),
        (status = 403, description = "The role is above what the caller may grant"),
        (status = 404, description = "The school is not in scope"),
        (status = 409, description = "The address is taken")))]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(new): Body<NewUser>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    caller.require(&state, Capability::Administer).await?;
    let invalid = |field: &str, e: &dyn std::fmt::Display| {
        ApiError::bad_request("invalid_body", format!("{field}: {e}"))
    };
    let email: Email = new.email.parse().map_err(|e| invalid("email", &e))?;
    let password = Password::try_from(new.password).map_err(|e| invalid("password", &e))?;
    let role: Role = new.role.parse().map_err(|e| invalid("role", &e))?;
    let region: Option<RegionId> = new
        .region_id
        .map(|r| r.parse())
        .transpose()
        .map_err(|e| invalid("region_id", &e))?;
    let school: Option<SchoolId> = new
        .school_id
        .map(|s| s.parse())
        .transpose()
        .map_err(|e| invalid("school_id", &e))?;
    let grant = Grant::new(role, region, school).map_err(|e| invalid("role", &e))?;
    match grant.school() {
        Some(school) => caller.reach_school(&state, school).await?,
        None if !caller.is_superadmin() => {
            caller
                .audit_refusal(
                    &state,
                    "forbidden",
                    serde_json::json!({ "grant": grant.role().as_str() }),
                )
                .await?;
            return Err(ApiError::forbidden(
                "only a superadmin grants superadmin or region_admin",
            ));
        }
        None => {}
    }
    // The same bound as logins' verifications: a burst of additions waits its turn.
    let hash = state
        .hasher
        .hash(password)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let actor = db::accounts::user_actor(caller.user_id);
    match users::create(&state.pool, &caller.scope, &actor, &email, &hash, &grant).await {
        Ok(user_id) => Ok((StatusCode::CREATED, Json(Created { user_id }))),
        Err(DbError::Conflict(message)) => Err(ApiError::conflict("email_taken", message)),
        Err(DbError::NotFound(message)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", message))
        }
        Err(err) => Err(err.into()),
    }
}

/// `GET /api/v1/users/{user_id}`.
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "A user id")),
    responses((status = 200, body = User, description = "The person"),
        (status = 403, description = "Administrators only"),
        (status = 404, description = "No such user in scope")))]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<Uuid>,
) -> Result<Json<User>, ApiError> {
    caller.require(&state, Capability::Administer).await?;
    match users::get(&state.pool, &caller.scope, user).await? {
        Some((user, _)) => Ok(Json(user)),
        None => Err(ApiError::not_found("user")),
    }
}

/// `DELETE /api/v1/users/{user_id}`: disables the account (kept for the audit trail) and
/// ends its sessions. Idempotent.
#[utoipa::path(delete, path = "/api/v1/users/{user_id}", tag = "users", operation_id = "disable_user",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "A user id")),
    responses((status = 204, description = "Disabled"),
        (status = 403, description = "Administrators only, and only of people wholly in their scope"),
        (status = 404, description = "No such user in scope"),
        (status = 409, description = "One cannot disable oneself")))]
pub(super) async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require(&state, Capability::Administer).await?;
    if user == caller.user_id {
        return Err(ApiError::conflict(
            "self",
            "you cannot disable your own account; ask another administrator",
        ));
    }
    let Some((target, total)) = users::get(&state.pool, &caller.scope, user).await? else {
        return Err(ApiError::not_found("user"));
    };
    if total > target.grants.len() as i64 {
        caller
            .audit_refusal(
                &state,
                "forbidden",
                serde_json::json!({ "user_id": user, "reason": "grants outside scope" }),
            )
            .await?;
        return Err(ApiError::forbidden(
            "this person also holds roles outside your scope; ask a superadmin",
        ));
    }
    let actor = db::accounts::user_actor(caller.user_id);
    users::disable(&state.pool, &caller.scope, &actor, &target).await?;
    Ok(StatusCode::NO_CONTENT)
}
