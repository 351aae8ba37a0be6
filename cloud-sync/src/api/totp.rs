//! The signed-in user's own second factor: `POST /api/v1/me/totp` starts an enrolment (a new
//! secret, shown once, pending), `POST /api/v1/me/totp/confirm` activates it with a code from
//! the app, `POST /api/v1/me/totp/disable` removes it with the password and a current code.
//!
//! Every role may do this for itself, viewers included. Wrong codes and passwords here answer
//! 403, not 401: the caller's session is fine, and the dashboard refreshes its token on a 401.
//! Confirm and disable take an attempt from the same per-account and per-source budgets as
//! login (a stolen session must not be a way to guess the password). Every change and every
//! refusal is audited (`totp_start`, `totp_enable`, `totp_disable`).

use std::net::SocketAddr;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::extract::Body;
use super::login_limit::Exhausted;
use super::{ApiError, AppState, Caller};
use crate::auth::{self, Password, TotpCode, TotpSecret};
use crate::db::{self, totp::TotpState};

/// `POST /api/v1/me/totp/confirm`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfirmRequest {
    /// The 6 digits the authenticator app shows for the new secret; spaces between them are
    /// ignored.
    #[schema(pattern = "^ *([0-9] *){6}$", max_length = 16)]
    code: String,
}

/// `POST /api/v1/me/totp/disable`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DisableRequest {
    /// The account's password (at most 1024 bytes).
    #[schema(max_length = 1024)]
    password: String,
    /// A current code from the authenticator app.
    #[schema(pattern = "^ *([0-9] *){6}$", max_length = 16)]
    code: String,
}

/// A new secret, shown once: type `secret` into an authenticator app or open `otpauth_uri`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Enrolment {
    /// Always `pending`: confirm with a code to activate it.
    state: &'static str,
    /// Base32 (RFC 4648, no padding), 32 characters.
    secret: String,
    /// The same in groups of four, easier to type.
    secret_grouped: String,
    /// `otpauth://totp/...` (the Key Uri Format apps import).
    otpauth_uri: String,
    /// `SHA1`.
    algorithm: &'static str,
    /// 6.
    digits: u32,
    /// 30 (seconds).
    period: u64,
}

/// `POST /api/v1/me/totp`: a new pending secret for the caller.
#[utoipa::path(post, path = "/api/v1/me/totp", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Enrolment, description = "A new secret; not active until confirmed"),
        (status = 401, description = "No valid access token"),
        (status = 409, description = "Two-factor sign-in is active already (`totp_active`); disable it first")))]
pub(super) async fn start(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let secret = TotpSecret::generate().map_err(|e| ApiError::internal(&e))?;
    let sealed = state
        .totp_key
        .seal(caller.user_id, &secret)
        .map_err(|e| ApiError::internal(&e))?;
    if !db::totp::start(&state.pool, caller.user_id, &sealed).await? {
        return Err(active());
    }
    let base32 = secret.base32();
    let grouped = base32
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let enrolment = Enrolment {
        state: "pending",
        otpauth_uri: secret.otpauth_uri(caller.email.as_str()),
        secret: base32,
        secret_grouped: grouped,
        algorithm: "SHA1",
        digits: auth::TOTP_DIGITS,
        period: auth::TOTP_STEP_SECS,
    };
    let mut response = Json(enrolment).into_response();
    // The secret must not be kept by caches.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /api/v1/me/totp/confirm`: activates the pending secret with a code from the app.
#[utoipa::path(post, path = "/api/v1/me/totp/confirm", tag = "auth", security(("bearer" = [])),
    request_body = ConfirmRequest,
    responses((status = 204, description = "Two-factor sign-in is active"),
        (status = 400, description = "No code, or not 6 digits (`invalid_code`)"),
        (status = 401, description = "No valid access token"),
        (status = 403, description = "The code does not match the new secret (`wrong_code`)"),
        (status = 409, description = "Nothing to confirm (`totp_not_started`) or active already (`totp_active`)"),
        (status = 429, description = "Too many attempts; see Retry-After")))]
pub(super) async fn confirm(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    caller: Caller,
    Body(request): Body<ConfirmRequest>,
) -> Result<StatusCode, ApiError> {
    let code = parse_code(&request.code)?;
    let sealed = match db::totp::state(&state.pool, caller.user_id).await? {
        TotpState::Pending { sealed } => sealed,
        TotpState::Off => {
            refuse(&state, &caller, "totp_enable", "not_started").await?;
            return Err(ApiError::conflict(
                "totp_not_started",
                "there is no new secret to confirm: start with POST /api/v1/me/totp",
            ));
        }
        TotpState::Active { .. } => {
            refuse(&state, &caller, "totp_enable", "already_active").await?;
            return Err(active());
        }
    };
    limit(&state, peer, &headers, &caller, "totp_enable").await?;
    let secret = state
        .totp_key
        .open(caller.user_id, &sealed)
        .map_err(|e| ApiError::internal(&e))?;
    let Some(step) = secret.verify(code, SystemTime::now()) else {
        refuse(&state, &caller, "totp_enable", "wrong_code").await?;
        return Err(wrong_code());
    };
    if !db::totp::confirm(&state.pool, caller.user_id, &sealed, step).await? {
        return Err(ApiError::conflict(
            "totp_not_started",
            "the secret changed meanwhile (another start or confirm); start again",
        ));
    }
    tracing::info!(user = %caller.user_id, "two-factor sign-in enabled");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/me/totp/disable`: removes the second factor, given the password and a
/// current code.
#[utoipa::path(post, path = "/api/v1/me/totp/disable", tag = "auth", security(("bearer" = [])),
    request_body = DisableRequest,
    responses((status = 204, description = "Two-factor sign-in is off"),
        (status = 400, description = "Missing fields, a password over 1024 bytes, or a code that is not 6 digits (`invalid_code`)"),
        (status = 401, description = "No valid access token"),
        (status = 403, description = "Wrong password (`wrong_password`) or code (`wrong_code`)"),
        (status = 409, description = "Two-factor sign-in is not active (`totp_not_active`)"),
        (status = 429, description = "Too many attempts; see Retry-After")))]
pub(super) async fn disable(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    caller: Caller,
    Body(request): Body<DisableRequest>,
) -> Result<StatusCode, ApiError> {
    if request.password.len() > Password::MAX_BYTES {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!(
                "password: at most {} bytes (no account has a longer one)",
                Password::MAX_BYTES
            ),
        ));
    }
    let code = parse_code(&request.code)?;
    let TotpState::Active { sealed } = db::totp::state(&state.pool, caller.user_id).await? else {
        refuse(&state, &caller, "totp_disable", "not_active").await?;
        return Err(ApiError::conflict(
            "totp_not_active",
            "two-factor sign-in is not active for this account",
        ));
    };
    limit(&state, peer, &headers, &caller, "totp_disable").await?;

    let Some(login) = db::accounts::find_login(&state.pool, &caller.email).await? else {
        return Err(ApiError::invalid_token());
    };
    let password = request.password;
    let hash = login.password_hash;
    let matches = state
        .hasher
        .verify(password, Some(hash))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    if !matches {
        refuse(&state, &caller, "totp_disable", "wrong_password").await?;
        return Err(ApiError::forbidden_code(
            "wrong_password",
            "the password is wrong",
        ));
    }
    let secret = state
        .totp_key
        .open(caller.user_id, &sealed)
        .map_err(|e| ApiError::internal(&e))?;
    let accepted = match secret.verify(code, SystemTime::now()) {
        Some(step) => db::totp::accept_step(&state.pool, caller.user_id, step).await?,
        None => false,
    };
    if !accepted {
        refuse(&state, &caller, "totp_disable", "wrong_code").await?;
        return Err(wrong_code());
    }
    db::totp::disable(&state.pool, caller.user_id).await?;
    tracing::info!(user = %caller.user_id, "two-factor sign-in disabled");
    Ok(StatusCode::NO_CONTENT)
}

fn parse_code(typed: &str) -> Result<TotpCode, ApiError> {
    typed
        .parse()
        .map_err(|e| ApiError::bad_request("invalid_code", format!("code: {e}")))
}

fn active() -> ApiError {
    ApiError::conflict(
        "totp_active",
        "two-factor sign-in is active already; disable it first to enrol a new phone",
    )
}

fn wrong_code() -> ApiError {
    ApiError::forbidden_code(
        "wrong_code",
        "the code is wrong or was used already; check the phone's clock and enter the next one",
    )
}

async fn refuse(
    state: &AppState,
    caller: &Caller,
    action: &'static str,
    outcome: &'static str,
) -> Result<(), ApiError> {
    db::totp::audit_refusal(&state.pool, caller.user_id, action, outcome).await?;
    Ok(())
}

/// Takes an attempt from the caller's login budgets; 429 (audited) when one is spent.
async fn limit(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    caller: &Caller,
    action: &'static str,
) -> Result<(), ApiError> {
    let source = state.login_limits.source(peer, headers);
    let Err(exhausted) = state.login_limits.check(source, caller.email.as_str()) else {
        return Ok(());
    };
    let wait = match exhausted {
        Exhausted::Account(wait) | Exhausted::Source(wait) => wait,
    };
    refuse(state, caller, action, "rate_limited").await?;
    Err(ApiError::too_fast(wait.as_secs().max(1)))
}
