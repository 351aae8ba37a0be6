//! `/readyz` and `/metrics`, the two endpoints machines ask on a schedule (`/healthz`, in
//! `mod.rs`, only says the process answers).
//!
//! `/readyz` is open like `/healthz`: it says which part is not working, nothing about the
//! school. `/metrics` says how many alerts are open and in which state — in a school under
//! lockdown that is not for everyone on its network — so it answers without the operator token
//! only to a client on the gateway itself (a loopback peer: a Prometheus or agent running on
//! the appliance), and to anyone else only with the token. The peer is the TCP connection's
//! own address; no forwarded header is ever believed (nothing proxies the gateway's listener).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ApiState;
use crate::metrics::{LaneNumbers, ScrapeState};

/// The longest a readiness check of the database may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// An engine whose loop has not turned for this long is stuck: it turns at least every
/// 500 ms when idle, and a busy turn (a batch of 1,024 inputs) takes well under a second.
pub(super) const ENGINE_STALE_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub(super) struct Readiness {
    /// `ready` or `not ready`.
    status: &'static str,
    /// Each check: `ok`, or what is wrong.
    checks: Checks,
}

#[derive(Debug, Serialize)]
struct Checks {
    database: String,
    engine: String,
    device_listener: String,
}

/// `GET /readyz`: 200 when the database answers, the engine's loop turns and the device
/// listener accepts; 503 naming each failed check otherwise.
pub(super) async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Readiness>) {
    let database = match tokio::time::timeout(CHECK_TIMEOUT, state.read(|db| db.ping())).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(_)) => "the database cannot be read (the agent's log says why)".to_owned(),
        Err(_) => format!("the database did not answer within {CHECK_TIMEOUT:?}"),
    };
    let age = state.engine.heartbeat().age();
    let engine = if age < ENGINE_STALE_AFTER {
        "ok".to_owned()
    } else {
        format!(
            "the alert engine is stuck: its loop last turned {:.1} s ago",
            age.as_secs_f64()
        )
    };
    let device_listener = if state.gate.accepting() {
        "ok".to_owned()
    } else {
        "the device listener is not accepting connections".to_owned()
    };
    let ready = [&database, &engine, &device_listener]
        .iter()
        .all(|c| c.as_str() == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "not ready" },
        checks: Checks {
            database,
            engine,
            device_listener,
        },
    };
    (status, Json(body))
}

/// `GET /metrics`: the OpenMetrics text (or Prometheus' text format, when the scraper's
/// `Accept` prefers it), the scrape-time numbers read first.
pub(super) async fn metrics(State(state): State<ApiState>, request: Request) -> Response {
    let loopback = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback());
    if !loopback && let Err(why) = super::auth::check(request.headers(), &state) {
        return super::auth::refuse(why);
    }
    let connected = state.gate.connected_device_ids();
    let integrations = state.gate.connected_integrations();
    let read = state
        .read(|db| {
            Ok((
                db.devices()?,
                db.alert_counts()?,
                db.outbox_backlog()?,
                db.dead_letter_count()?,
            ))
        })
        .await;
    let (devices, alerts, backlog, dead_letters) = match read {
        Ok(read) => read,
        Err(e) => return e.into_response(),
    };
    let mut connected_by_kind: Vec<(String, u64)> = Vec::new();
    for id in &connected {
        let Some(device) = devices.iter().find(|d| d.id == id.as_str()) else {
            continue;
        };
        match connected_by_kind
            .iter_mut()
            .find(|(k, _)| *k == device.kind)
        {
            Some((_, n)) => *n += 1,
            None => connected_by_kind.push((device.kind.clone(), 1)),
        }
    }
    let now = state.engine.clock().now();
    let lanes = backlog
        .iter()
        .map(|lane| LaneNumbers {
            lane: lane.lane.as_str(),
            records: lane.records,
            bytes: lane.bytes,
            oldest_age_s: lane.oldest_at.map_or(0.0, |at| {
                // Milliseconds to seconds; a clock that went back reads as 0.
                now.get().saturating_sub(at.get()).max(0) as f64 / 1e3
            }),
        })
        .collect();
    let text = state.metrics.render(&ScrapeState {
        connected_by_kind,
        connected_integrations: u64::try_from(integrations).unwrap_or(u64::MAX),
        alerts_by_state: alerts,
        lanes,
        dead_letters,
    });
    let accept = request.headers().get(header::ACCEPT);
    let (content_type, text) =
        shared::metrics_text::negotiate(text, accept.and_then(|v| v.to_str().ok()));
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}
