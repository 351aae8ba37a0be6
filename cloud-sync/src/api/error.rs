//! [`ApiError`]: the one error type of every handler, answered as
//! `{"error": {"code": ..., "message": ...}}`. Database and other internal failures are logged
//! here and shown to the client only as "internal error".

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::ids::Seq;

use crate::db::DbError;

/// A refused or failed request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// For a sync gap: the seq the gateway must resend from.
    expected_seq: Option<Seq>,
    /// For 429: seconds to wait.
    retry_after_secs: Option<u64>,
    /// For 401 on a protected route: the `WWW-Authenticate` challenge.
    challenge: Option<&'static str>,
}

impl ApiError {
    /// A refusal with a status, a stable machine-readable code and a message for people.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            expected_seq: None,
            retry_after_secs: None,
            challenge: None,
        }
    }

    /// 409: the batch starts after a gap in its epoch and lane; resend from `expected`.
    pub fn gap(expected: Seq) -> Self {
        let mut err = Self::new(
            StatusCode::CONFLICT,
            "sequence_gap",
            format!("records are missing before this batch; resend from seq {expected}"),
        );
        err.expected_seq = Some(expected);
        err
    }

    /// 400: the request itself is wrong; the message says how.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404: nothing by that id, or nothing the caller may see (the two answer alike, so ids
    /// outside a caller's scope cannot be probed).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    /// 403: the object is in the caller's scope but their role may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403 with a code of its own (e.g. a wrong password when re-proving who one is).
    pub fn forbidden_code(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 409: the request conflicts with the object's state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 429 with `Retry-After`.
    pub fn too_fast(retry_after_secs: u64) -> Self {
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry in {retry_after_secs} s"),
        );
        err.retry_after_secs = Some(retry_after_secs);
        err
    }

    /// 401 for a protected route without a bearer token.
    pub fn unauthenticated() -> Self {
        let mut err = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "log in and send the access token as `Authorization: Bearer <token>`",
        );
        err.challenge = Some(r#"Bearer realm="hallwatch""#);
        err
    }

    /// 401 for a bearer token that is not valid (forged, expired, for a disabled user...);
    /// the client logs in or refreshes again.
    pub fn invalid_token() -> Self {
        let mut err = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is not valid; refresh it or log in again",
        );
        err.challenge = Some(r#"Bearer realm="hallwatch", error="invalid_token""#);
        err
    }

    /// 500, after logging what really happened.
    pub fn internal(err: &dyn std::error::Error) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// The status code.
    pub fn status_code(&self) -> StatusCode {
        self.status
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        Self::internal(&err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        if let Some(seq) = self.expected_seq {
            body["expected_seq"] = json!(seq.get());
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
