//! The operator token: every `/api/v1` call carries `Authorization: Bearer <token>`, the
//! token `edge-agent init` wrote to `DATA_DIR/operator-token`.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;

/// Refuses requests without the operator token (401, with `WWW-Authenticate`).
pub(super) async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    match check(request.headers(), &state) {
        Ok(()) => next.run(request).await,
        Err(why) => refuse(why),
    }
}

/// Whether `headers` carry the operator token; why not, for [`refuse`], when they do not.
pub(super) fn check(headers: &header::HeaderMap, state: &ApiState) -> Result<(), &'static str> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if same(token.trim().as_bytes(), state.token.as_bytes()) => Ok(()),
        Some(_) => Err("the operator token is wrong"),
        None => Err("an operator token is required: Authorization: Bearer <token>"),
    }
}

/// 401 with `WWW-Authenticate: Bearer`.
pub(super) fn refuse(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Compares without an early exit, so the time taken says nothing about how much matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn compares_whole_tokens() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }
}
