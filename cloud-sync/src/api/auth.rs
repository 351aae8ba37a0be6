//! `POST /api/v1/auth/login`, `/refresh` and `/logout`: a password for a pair of tokens, a
//! refresh token for the next pair, and the end of a session.
//!
//! Login answers the same 401 for an unknown address, a wrong password and a disabled
//! account, and takes about as long for each (an unknown address is verified against a dummy
//! hash). Attempts are limited per account and per source address (429 with `Retry-After`,
//! before any hashing). Every login, refused or not, is audited, as are refresh-token reuse
//! and logouts.
//!
//! When the user's second factor is active, a right password is not enough: without
//! `totp_code` the answer is 401 `totp_required` (only a right password learns that a code
//! is needed, so the dashboard can ask for it), a wrong code or one already used is 401
//! `wrong_code`. Each such attempt has taken its share of the same per-account and
//! per-source budgets as any login, and is audited.

use std::net::SocketAddr;
use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::login_limit::Exhausted;
use super::{ApiError, AppState};
use crate::auth::{self, Email, RefreshToken, TotpCode};
use crate::db;
use crate::db::accounts::{self, Refreshed};
use crate::db::audit::{self, AuditEntry};
use crate::pki::TokenHash;

/// Larger than any honest request: an address, a password of at most 1 KiB, a token.
const MAX_BODY: usize = 8 * 1024;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    /// The account's address (no account has a longer one).
    #[schema(max_length = 254)]
    email: String,
    password: String,
    /// The 6 digits of the authenticator app, when the account asks for them
    /// (`totp_required`); spaces between them are ignored.
    #[serde(default)]
    #[schema(pattern = "^ *([0-9] *){6}$", max_length = 16)]
    totp_code: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshRequest {
    refresh_token: String,
}

/// The answer to a login or refresh (RFC 6749's shape).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct TokenPair {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
}

/// `POST /api/v1/auth/login`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair, description = "Signed in: an access and a refresh token"),
        (status = 400, description = "Malformed body, or a totp_code that is not 6 digits"),
        (status = 401, description = "Wrong address or password (`invalid_credentials`); a right \
            password for an account with two-factor sign-in but no code (`totp_required`); a \
            wrong or already used code (`wrong_code`)"),
        (status = 429, description = "Too many attempts; see Retry-After")))]
pub(super) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: LoginRequest = parse(
        &body,
        "{\"email\": ..., \"password\": ..., \"totp_code\": \"123456\" (when asked)}",
    )?;
    let code = request
        .totp_code
        .as_deref()
        .map(str::parse::<TotpCode>)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_code", format!("totp_code: {e}")))?;
    let source = state.login_limits.source(peer, &headers);
    let audit_detail = json!({ "email": truncate(&request.email), "source": source.to_string() });

    if let Err(exhausted) = state.login_limits.check(source, &request.email) {
        let (wait, by) = match exhausted {
            Exhausted::Account(wait) => (wait, "account"),
            Exhausted::Source(wait) => (wait, "source"),
        };
        let mut detail = audit_detail;
        detail["limited_by"] = json!(by);
        audit_login(&state, None, "rate_limited", detail).await?;
        return Err(ApiError::too_fast(wait.as_secs().max(1)));
    }

    // An address that cannot exist is checked like an unknown one, so it answers alike.
    let user = match request.email.parse::<Email>() {
        Ok(email) => accounts::find_login(&state.pool, &email).await?,
        Err(_) => None,
    };
    let password = request.password;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let matches = state
        .hasher
        .verify(password, stored)
        .await
        .map_err(|e| ApiError::internal(&e))?;

    let user = match (user, matches) {
        (Some(user), true) if !user.disabled => user,
        (user, _) => {
            let outcome = match (&user, matches) {
                (None, _) => "unknown_user",
                (Some(_), false) => "wrong_password",
                (Some(_), true) => "disabled",
            };
            audit_login(&state, user.map(|u| u.user_id), outcome, audit_detail).await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong e-mail address or password",
            ));
        }
    };

    if let Some(sealed) = &user.totp {
        second_factor(&state, user.user_id, sealed, code, &audit_detail).await?;
    }

    let refresh = RefreshToken::generate().map_err(|e| ApiError::internal(&e))?;
    accounts::start_session(
        &state.pool,
        user.user_id,
        &refresh.hash(),
        auth::REFRESH_TTL,
        audit_detail,
    )
    .await?;
    tracing::info!(user = %user.user_id, %source, "login");
    token_pair(&state, user.user_id, refresh)
}

/// The second step of a login whose password was right: `Ok` for a right code not used
/// before, otherwise the audited 401.
async fn second_factor(
    state: &AppState,
    user: Uuid,
    sealed: &[u8],
    code: Option<TotpCode>,
    audit_detail: &serde_json::Value,
) -> Result<(), ApiError> {
    let Some(code) = code else {
        audit_login(state, Some(user), "totp_required", audit_detail.clone()).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "totp_required",
            "this account signs in with a second factor: send the 6-digit code from the \
             authenticator app as totp_code",
        ));
    };
    let secret = state
        .totp_key
        .open(user, sealed)
        .map_err(|e| ApiError::internal(&e))?;
    let refused = match secret.verify(code, SystemTime::now()) {
        None => Some("wrong_totp"),
        Some(step) if !db::totp::accept_step(&state.pool, user, step).await? => Some("totp_replay"),
        Some(_) => None,
    };
    if let Some(outcome) = refused {
        audit_login(state, Some(user), outcome, audit_detail.clone()).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong_code",
            "the code is wrong or was used already; enter the next one the app shows",
        ));
    }
    Ok(())
}

/// `POST /api/v1/auth/refresh`.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair, description = "The next pair; the token sent is spent"),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "Unknown, expired or reused token")))]
pub(super) async fn refresh(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: RefreshRequest = parse(&body, "{\"refresh_token\": ...}")?;
    let next = RefreshToken::generate().map_err(|e| ApiError::internal(&e))?;
    let outcome = accounts::refresh(
        &state.pool,
        &TokenHash::of(&request.refresh_token),
        &next.hash(),
        auth::REFRESH_TTL,
    )
    .await?;
    match outcome {
        Refreshed::Rotated { user_id } => token_pair(&state, user_id, next),
        refused => {
            tracing::info!(?refused, "refresh refused");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "this refresh token is not valid; log in again",
            ))
        }
    }
}

/// `POST /api/v1/auth/logout`.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "The session has ended")))]
pub(super) async fn logout(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let request: RefreshRequest = parse(&body, "{\"refresh_token\": ...}")?;
    // An unknown or spent token ends nothing, and says so no differently: logging out twice
    // is not an error, and the answer tells a guesser nothing.
    if let Some(user) =
        accounts::logout(&state.pool, &TokenHash::of(&request.refresh_token)).await?
    {
        tracing::info!(%user, "logout");
    }
    Ok(StatusCode::NO_CONTENT)
}

fn token_pair(state: &AppState, user: Uuid, refresh: RefreshToken) -> Result<Response, ApiError> {
    let (access_token, ttl) = state
        .keys
        .issue(user, SystemTime::now())
        .map_err(|e| ApiError::internal(&e))?;
    let pair = TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in: ttl.as_secs(),
        refresh_token: refresh.as_str().to_owned(),
    };
    let mut response = Json(pair).into_response();
    // Tokens must not be kept by caches (RFC 6749 §5.1).
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn parse<T: DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("requests here are at most {MAX_BODY} bytes"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("expected JSON {shape}: {e}"),
        )
    })
}

async fn audit_login(
    state: &AppState,
    user: Option<Uuid>,
    outcome: &'static str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let entry = AuditEntry {
        school_id: None,
        actor: user.map_or_else(|| "anonymous".to_owned(), accounts::user_actor),
        action: "login",
        outcome,
        detail,
    };
    audit::record_alone(&state.pool, &entry).await?;
    Ok(())
}

/// At most [`Email::MAX_LEN`] characters of what was typed as an address, for the audit log.
fn truncate(typed: &str) -> String {
    typed.trim().chars().take(Email::MAX_LEN).collect()
}
