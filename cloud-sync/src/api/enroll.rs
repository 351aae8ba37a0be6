//! `POST /api/v1/enroll`: a gateway presents its one-time token and a CSR and receives its
//! client certificate and the CA that the sync listener's certificate chains to. The request
//! and answer are `shared::enroll`'s, so the gateway reads exactly what is written here.
//!
//! Refusals: unknown token 401, expired 410, already used 409, unusable CSR 400 (the token
//! stays valid). Each is audited by `db::enroll`.
//!
//! `POST /api/v1/enroll/check` answers whether a token would enroll a gateway of a given
//! school, without using it up, so that `edge-agent setup` can check before it writes
//! anything. The same refusals, plus 403 `wrong_school`; each check is counted against the
//! source address's login budget (429 with `Retry-After` beyond it), refusals are audited.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use shared::enroll::{EnrollCheckRequest, EnrollCheckResponse, EnrollRequest, EnrollResponse};

use super::{ApiError, AppState};
use crate::db::enroll::{self, Checked, Refusal};

/// Larger than any CSR; a token and a PEM request are well under 8 KiB.
const MAX_BODY: usize = 64 * 1024;

pub(super) async fn enroll(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<EnrollResponse>, ApiError> {
    bounded(&body)?;
    let request: EnrollRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("expected JSON {{\"token\": ..., \"csr_pem\": ...}}: {e}"),
        )
    })?;
    match enroll::enroll(&state.pool, &state.ca, &request.token, &request.csr_pem).await? {
        Ok(enrolled) => {
            tracing::info!(school = %enrolled.school_id, gateway = %enrolled.gateway_id, "gateway enrolled");
            Ok(Json(EnrollResponse {
                school_id: enrolled.school_id,
                gateway_id: enrolled.gateway_id,
                certificate_pem: enrolled.cert_pem,
                ca_pem: state.ca.cert_pem().to_owned(),
            }))
        }
        Err(refusal) => {
            tracing::warn!(?refusal, "enrollment refused");
            Err(refused(refusal))
        }
    }
}

pub(super) async fn check(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<EnrollCheckResponse>, ApiError> {
    let source = state.login_limits.source(peer, &headers);
    if let Err(exhausted) = state.login_limits.check_source(source) {
        let wait = match exhausted {
            super::login_limit::Exhausted::Account(wait)
            | super::login_limit::Exhausted::Source(wait) => wait,
        };
        return Err(ApiError::too_fast(wait.as_secs().max(1)));
    }
    bounded(&body)?;
    let request: EnrollCheckRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("expected JSON {{\"token\": ..., \"school_id\": ...}}: {e}"),
        )
    })?;
    match enroll::check(&state.pool, &request.token, &request.school_id).await? {
        Checked::Valid { expires_at } => Ok(Json(EnrollCheckResponse {
            school_id: request.school_id,
            expires_at: shared::UnixMillis::new(expires_at),
        })),
        Checked::OtherSchool(theirs) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_school",
            format!(
                "this enrollment token is for school {theirs}, not {}; ask for a token for {}",
                request.school_id, request.school_id
            ),
        )),
        Checked::Refused(refusal) => Err(refused(refusal)),
    }
}

fn bounded(body: &[u8]) -> Result<(), ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("enrollment requests are at most {MAX_BODY} bytes"),
        ));
    }
    Ok(())
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::UnknownToken => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown_token",
            "this enrollment token is not valid; ask for a new one",
        ),
        Refusal::Expired => ApiError::new(
            StatusCode::GONE,
            "token_expired",
            "this enrollment token has expired; ask for a new one",
        ),
        Refusal::AlreadyUsed => ApiError::new(
            StatusCode::CONFLICT,
            "token_used",
            "this enrollment token has already enrolled a gateway; ask for a new one",
        ),
        Refusal::BadCsr(reason) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_csr",
            format!("the certificate signing request cannot be used: {reason}"),
        ),
    }
}
