//! `POST /api/v1/sync`: a gateway's `SyncBatch` in, a `SyncAck` out (both postcard + zstd).
//!
//! Checks run cheapest first: rate (429), body size (413), decoding under the limits (413 for
//! sizes and counts, 400 otherwise), the body's names against the certificate's (403, audited,
//! nothing written), the batch's shape (400, nothing written: consecutive sequence numbers,
//! every record of the batch's lane, alert records dropped only as dead letters), then the
//! merge of the batch's epoch and lane (409 on a gap). `acked_through` in the answer is the
//! cursor of that epoch and lane.

use axum::Extension;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::sync::{RecordBody, SyncAck, SyncBatch, SyncError, decode_batch, encode_ack};

use super::{ApiError, AppState};
use crate::db::audit::{self, AuditEntry};
use crate::db::ingest::{self, Merged};
use crate::metrics::BatchOutcome;
use crate::pki::GatewayIdentity;

/// The media type of sync bodies both ways.
pub const SYNC_MEDIA_TYPE: &str = "application/vnd.hallwatch.sync";

pub(super) async fn sync(
    State(state): State<AppState>,
    Extension(gateway): Extension<GatewayIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Err(wait) = state.rate.check(&gateway.school_id, &gateway.gateway_id) {
        // Rounded up, so a gateway that waits as told finds a token.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Err(ApiError::too_fast(secs.max(1)));
    }
    let max = state.limits.max_compressed;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > u64::try_from(max).unwrap_or(u64::MAX)) {
        return Err(too_large(max));
    }
    let bytes = to_bytes(body, max).await.map_err(|_| too_large(max))?;
    let batch = decode_batch(&bytes, &state.limits).map_err(decode_refusal)?;

    let lane = batch.lane;
    let refused = |e: ApiError| {
        state.metrics.sync_batch(lane, BatchOutcome::Refused, 0);
        e
    };

    if let Some(claimed) = foreign_name(&batch, &gateway) {
        state.metrics.sync_batch(lane, BatchOutcome::Refused, 0);
        tracing::warn!(school = %gateway.school_id, gateway = %gateway.gateway_id, claimed, "batch names another school or gateway");
        let entry = AuditEntry {
            school_id: Some(&gateway.school_id),
            actor: format!("gateway:{}", gateway.gateway_id),
            action: "sync",
            outcome: "forbidden",
            detail: json!({ "claimed": claimed, "records": batch.records.len() }),
        };
        audit::record_alone(&state.pool, &entry).await?;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "identity_mismatch",
            "the batch names a school or gateway other than this gateway's certificate",
        ));
    }
    ingest::check_batch(batch.lane, &batch.records).map_err(|e| {
        refused(ApiError::new(
            StatusCode::BAD_REQUEST,
            e.code(),
            e.to_string(),
        ))
    })?;

    match ingest::merge(
        &state.pool,
        &gateway,
        &batch,
        state.limits.max_commands,
        &state.liveness,
    )
    .await
    .map_err(|e| refused(e.into()))?
    {
        Merged::Acked {
            acked_through,
            new_records,
            commands,
        } => {
            tracing::debug!(gateway = %gateway.gateway_id, epoch = %batch.epoch, lane = %batch.lane, new_records, %acked_through, "batch merged");
            state.metrics.sync_batch(
                lane,
                BatchOutcome::Acked,
                u64::try_from(new_records).unwrap_or(0),
            );
            let ack = SyncAck {
                acked_through,
                commands,
            };
            let body = encode_ack(&ack).map_err(|e| ApiError::internal(&e))?;
            Ok(([(header::CONTENT_TYPE, SYNC_MEDIA_TYPE)], body).into_response())
        }
        Merged::Gap { expected } => {
            state.metrics.sync_batch(lane, BatchOutcome::Gap, 0);
            Err(ApiError::gap(expected))
        }
        Merged::NotEnrolled => Err(refused(ApiError::new(
            StatusCode::FORBIDDEN,
            "gateway_not_enrolled",
            "this gateway is not enrolled or has been revoked",
        ))),
    }
}

/// The first name in the body that is not the certificate's: the batch's school or gateway,
/// or a snapshot's school.
fn foreign_name(batch: &SyncBatch, gateway: &GatewayIdentity) -> Option<String> {
    if batch.school_id != gateway.school_id {
        return Some(format!("school {}", batch.school_id));
    }
    if batch.gateway_id != gateway.gateway_id {
        return Some(format!("gateway {}", batch.gateway_id));
    }
    batch.records.iter().find_map(|r| match &r.body {
        RecordBody::Snapshot(s) if s.school_id != gateway.school_id => {
            Some(format!("school {} (snapshot seq {})", s.school_id, r.seq))
        }
        _ => None,
    })
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("sync bodies are at most {max} bytes; send smaller batches"),
    )
}

fn decode_refusal(err: SyncError) -> ApiError {
    let status = match err {
        SyncError::CompressedTooLarge { .. }
        | SyncError::DecompressedTooLarge { .. }
        | SyncError::TooManyRecords { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "batch_too_large"
    } else {
        "bad_batch"
    };
    ApiError::new(status, code, err.to_string())
}
