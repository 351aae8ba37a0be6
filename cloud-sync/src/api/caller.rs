//! [`Caller`]: the one place a person's request gets its scope. The extractor verifies the
//! bearer access token (EdDSA, our keys only, `iss`/`aud`/`exp`), loads the user's grants
//! and derives their [`UserScope`]; handlers pass `&caller.scope` to `db::begin`, so every
//! query runs under row-level security for exactly the caller's schools (and read-only for
//! viewers). A handler that takes no `Caller` is public; there is no other way in.
//!
//! Refusals are 401 with a JSON error and `WWW-Authenticate: Bearer`: no token, a token that
//! does not verify, or one whose user no longer exists or is disabled (checked at every
//! request, so disabling an account takes effect at once).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::auth::{Email, Grant};
use crate::db::{self, UserScope};

/// The authenticated person making a request, and their scope.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Their user id (the token's `sub`).
    pub user_id: Uuid,
    /// Their address.
    pub email: Email,
    /// Their grants.
    pub grants: Vec<Grant>,
    /// The scope every query of the request runs in: `db::begin(pool, &caller.scope)`.
    pub scope: UserScope,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let user_id = state.keys.verify(token).map_err(|refusal| {
            tracing::info!(?refusal, "access token refused");
            ApiError::invalid_token()
        })?;
        let Some(record) = db::accounts::load_caller(&state.pool, user_id).await? else {
            tracing::info!(%user_id, "access token of a missing or disabled user");
            return Err(ApiError::invalid_token());
        };
        Ok(Self {
            user_id,
            email: record.email,
            grants: record.grants,
            scope: record.scope,
        })
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive).
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(ApiError::unauthenticated)?;
    let value = value.to_str().map_err(|_| ApiError::invalid_token())?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::unauthenticated()),
    }
}
