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

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
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
        response
    }
}
