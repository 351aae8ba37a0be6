//! `/healthz` (the process answers), `/readyz` (it can serve: Postgres answers `SELECT 1`
//! within [`READY_TIMEOUT`] and both listeners accept) and `/metrics`.
//!
//! `/healthz` and `/readyz` are on the public listener (for a load balancer) and on the metrics
//! listener; they say which part is not working and nothing else. `/metrics` is only on the
//! metrics listener (`--metrics-listen`, loopback by default), never on the public one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;

use super::AppState;
use crate::metrics::PoolNumbers;

/// The longest the readiness query may take.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether each listener is bound and served; set by `server`.
#[derive(Debug)]
pub struct Listeners {
    /// The public listener.
    pub public: AtomicBool,
    /// The mTLS sync listener.
    pub sync: AtomicBool,
}

impl Listeners {
    /// Both bound (they are bound before the state exists), neither ended.
    pub fn bound() -> Arc<Listeners> {
        Arc::new(Listeners {
            public: AtomicBool::new(true),
            sync: AtomicBool::new(true),
        })
    }
}

#[derive(Debug, Serialize)]
pub(super) struct Readiness {
    /// `ready` or `not ready`.
    status: &'static str,
    /// Each check: `ok`, or what is wrong.
    checks: Checks,
}

#[derive(Debug, Serialize)]
struct Checks {
    postgres: String,
    public_listener: String,
    sync_listener: String,
}

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when ready, 503 naming each failed check.
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let postgres = match tokio::time::timeout(READY_TIMEOUT, crate::db::ping(&state.pool)).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: Postgres does not answer");
            "Postgres does not answer (the service's log says why)".to_owned()
        }
        Err(_) => format!("Postgres did not answer SELECT 1 within {READY_TIMEOUT:?}"),
    };
    let listening = |flag: &AtomicBool, name: &str| {
        if flag.load(Ordering::Relaxed) {
            "ok".to_owned()
        } else {
            format!("the {name} listener is not accepting connections")
        }
    };
    let public_listener = listening(&state.listeners.public, "public");
    let sync_listener = listening(&state.listeners.sync, "sync");
    let ready = [&postgres, &public_listener, &sync_listener]
        .iter()
        .all(|c| c.as_str() == "ok");
    let body = Readiness {
        status: if ready { "ready" } else { "not ready" },
        checks: Checks {
            postgres,
            public_listener,
            sync_listener,
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// `GET /metrics` (metrics listener only): the OpenMetrics text (or Prometheus' text format,
/// when the scraper's `Accept` prefers it), the pool and the gateways' liveness read first.
pub(super) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let pool = PoolNumbers {
        size: state.pool.size(),
        idle: u64::try_from(state.pool.num_idle()).unwrap_or(u64::MAX),
    };
    let gateways =
        match tokio::time::timeout(READY_TIMEOUT, crate::db::liveness::counts(&state.pool)).await {
            Ok(Ok(counts)) => Some(counts),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot count gateways for the metrics");
                None
            }
            Err(_) => {
                tracing::warn!("counting gateways for the metrics took too long");
                None
            }
        };
    let text = state.metrics.render(&pool, gateways);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, text) = shared::metrics_text::negotiate(text, accept);
    ([(header::CONTENT_TYPE, content_type)], text)
}
