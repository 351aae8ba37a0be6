//! The two requests: `POST {cloud}/api/v1/enroll` with `shared::enroll::EnrollRequest`, and
//! `POST {cloud}/api/v1/enroll/check` (the token checked, not used). Each answer is read
//! through a size limit and sorted into success, a refused token, another refusal
//! or an unusable answer.

use std::time::Duration;

use serde::Deserialize;
use shared::enroll::{
    ENROLL_CHECK_PATH, ENROLL_PATH, EnrollCheckRequest, EnrollCheckResponse, EnrollRequest,
    EnrollResponse,
};
use shared::ids::SchoolId;

use super::{EnrollError, EnrollToken};
use crate::cloud_http::{self, Connections, StatusCode, printable};
use crate::config::CloudUrl;

/// The largest answer read. A success is two certificates (about 1.5 KiB); a refusal a line.
pub(super) const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// For the whole exchange: the cloud signs within milliseconds, but a school's uplink may be
/// slow.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The cloud's error body, `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    message: String,
}

/// Posts the token and CSR; the cloud's answer on 200.
pub(super) async fn post_enrollment(
    cloud: &CloudUrl,
    token: &EnrollToken,
    csr_pem: String,
) -> Result<EnrollResponse, EnrollError> {
    let body = serde_json::to_vec(&EnrollRequest {
        token: token.0.clone(),
        csr_pem,
    })
    .map_err(|e| EnrollError::Unreachable {
        url: cloud.to_string(),
        reason: e.to_string(),
    })?;
    post(cloud, ENROLL_PATH, body).await
}

/// Asks whether `token` would enroll a gateway of `school`, without using it up.
pub(super) async fn post_check(
    cloud: &CloudUrl,
    token: &EnrollToken,
    school: &SchoolId,
) -> Result<EnrollCheckResponse, EnrollError> {
    let body = serde_json::to_vec(&EnrollCheckRequest {
        token: token.0.clone(),
        school_id: school.clone(),
    })
    .map_err(|e| EnrollError::Unreachable {
        url: cloud.to_string(),
        reason: e.to_string(),
    })?;
    post(cloud, ENROLL_CHECK_PATH, body).await
}

/// Posts `body` (JSON) to `path` below the cloud's URL; the answer on 200, else the refusal
/// sorted into a refused token (401, 403, 409, 410) or another refusal.
async fn post<T: serde::de::DeserializeOwned>(
    cloud: &CloudUrl,
    path: &str,
    body: Vec<u8>,
) -> Result<T, EnrollError> {
    let url = cloud.endpoint(path);
    let unreachable = |reason: String| EnrollError::Unreachable {
        url: cloud.to_string(),
        reason,
    };
    // A cloud client never follows a redirect: one could carry the token elsewhere.
    let client = cloud_http::cloud_client(REQUEST_TIMEOUT, None, Connections::Default)
        .map_err(|e| unreachable(e.chain()))?;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                unreachable(format!(
                    "no answer within {} s (if the cloud did enroll the gateway meanwhile, \
                     the token is used up: ask for a new one)",
                    REQUEST_TIMEOUT.as_secs()
                ))
            } else {
                unreachable(e.causes())
            }
        })?;
    let status = response.status();
    let location = response.header("location").map(str::to_owned);
    let bytes = response
        .read_bounded(MAX_ANSWER_BYTES)
        .await
        .map_err(|reason| EnrollError::BadAnswer { reason })?;

    if status == StatusCode::OK {
        return serde_json::from_slice(&bytes).map_err(|e| EnrollError::BadAnswer {
            reason: format!("not the answer expected from {path}: {e}"),
        });
    }
    let message = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => body.error.message,
        Err(_) if status.is_redirection() => format!(
            "it redirects to {}; give that address as --cloud if it is the cloud",
            location.as_deref().unwrap_or("(no Location)")
        ),
        Err(_) => format!(
            "{} (not the cloud's error format; is {cloud} the Hallwatch cloud?)",
            printable(&bytes)
        ),
    };
    match status {
        StatusCode::UNAUTHORIZED
        | StatusCode::FORBIDDEN
        | StatusCode::CONFLICT
        | StatusCode::GONE => Err(EnrollError::TokenRefused { status, message }),
        _ => Err(EnrollError::CloudRefused {
            url: cloud.to_string(),
            status,
            message,
        }),
    }
}
