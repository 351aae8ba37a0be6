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

use serde_json::json;
use shared::ids::SchoolId;

use super::{ApiError, AppState};
use crate::auth::{Email, Grant};
use crate::db::audit::AuditEntry;
use crate::db::{self, Reach, UserScope};

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
    /// `METHOD /path` of the request, for the audit log.
    pub request: String,
    /// When the access token expires (seconds since the epoch): a live stream ends then.
    pub token_expires_at: u64,
}

/// What a role may do beyond reading within its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Act on alerts (acknowledge, resolve, notes): every role but viewers.
    Act,
    /// Manage users and read the audit log: superadmins, region and school admins.
    Administer,
}

impl Caller {
    /// True when this caller holds `capability`. Viewers hold neither; every other role
    /// holds both (a region admin administers their region's schools, a school admin their
    /// school: what they administer is bounded by the scope, not by this check).
    pub fn holds(&self, capability: Capability) -> bool {
        match capability {
            Capability::Act | Capability::Administer => !self.scope.read_only,
        }
    }

    /// True when the caller is a superadmin.
    pub fn is_superadmin(&self) -> bool {
        self.scope.reach == Reach::All
    }

    /// `Ok` when the caller holds `capability`; otherwise a 403, audited.
    pub async fn require(&self, state: &AppState, capability: Capability) -> Result<(), ApiError> {
        if self.holds(capability) {
            return Ok(());
        }
        self.audit_refusal(
            state,
            "forbidden",
            json!({ "needs": format!("{capability:?}") }),
        )
        .await?;
        Err(ApiError::forbidden(match capability {
            Capability::Act => "viewers can look but not act; ask a school admin",
            Capability::Administer => "only administrators can do this",
        }))
    }

    /// `Ok` when `school` is in the caller's scope; otherwise 404 (exactly as for a school
    /// that does not exist), and the attempt is audited.
    pub async fn reach_school(&self, state: &AppState, school: &SchoolId) -> Result<(), ApiError> {
        if self.scope.covers(school) {
            return Ok(());
        }
        self.audit_refusal(state, "out_of_scope", json!({ "school_id": school }))
            .await?;
        Err(ApiError::not_found("school"))
    }

    /// The 404 for an alert the caller's scope does not show; audited as a scope refusal
    /// when the alert exists in another school.
    pub async fn alert_not_found(&self, state: &AppState, alert: Uuid) -> ApiError {
        match db::alerts::school_of(&state.pool, alert).await {
            Ok(Some(school)) => {
                let detail = json!({ "alert_id": alert, "school_id": school });
                if let Err(err) = self.audit_refusal(state, "out_of_scope", detail).await {
                    return err;
                }
            }
            Ok(None) => {}
            Err(err) => return err.into(),
        }
        ApiError::not_found("alert")
    }

    /// Appends a refusal of this caller's request to the audit log (a platform row: only
    /// superadmins read it, so a school never learns who probed it from its own log).
    pub async fn audit_refusal(
        &self,
        state: &AppState,
        outcome: &'static str,
        mut detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        detail["request"] = json!(self.request);
        let entry = AuditEntry {
            school_id: None,
            actor: db::accounts::user_actor(self.user_id),
            action: "request",
            outcome,
            detail,
        };
        db::audit::record_alone(&state.pool, &entry).await?;
        Ok(())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let (user_id, token_expires_at) = state.keys.verify_until(token).map_err(|refusal| {
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
            request: format!("{} {}", parts.method, parts.uri.path()),
            token_expires_at,
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
