//! The HTTP side: the only module that imports axum.
//!
//! - `auth`: `POST /api/v1/auth/login | refresh | logout` on the public listener.
//! - `caller`: [`Caller`], the extractor that authenticates a person and yields their scope;
//!   every people-facing handler takes it.
//! - `login_limit`: login attempts per account and per source address.
//! - `me`: `GET /api/v1/me`, the first route behind [`Caller`].
//! - `totp`: `POST /api/v1/me/totp`, `.../confirm`, `.../disable`: the signed-in user starts,
//!   confirms and removes their second factor (login checks it in `auth`).
//! - `enroll`: `POST /api/v1/enroll` and `POST /api/v1/enroll/check` (a token checked
//!   without being used) on the public listener.
//! - `directory`, `alerts`, `users`, `audit`: the REST API people use (regions, schools and
//!   what they hold; alerts, their actions, notes, statistics, exports; people; the audit
//!   log), every handler behind [`Caller`], every query under the caller's scope.
//! - `realtime`: `GET /api/v1/realtime/events`, the caller's live events (SSE), fed by
//!   [`crate::realtime::Hub`].
//! - `openapi`: those routes registered together with their OpenAPI document (served at
//!   `/api/v1/openapi.json`), so no route exists undocumented.
//! - `schema`: schema-only enums for the document, for names the handlers parse themselves.
//! - `extract`, `page`: JSON-error extractors with bounded bodies; cursor pagination.
//! - `dashboard`: the people's dashboard (`GET /`, `/assets/...`), embedded in the binary;
//!   a client of the API above, not part of its document.
//! - `sync`: `POST /api/v1/sync` on the mTLS listener; the gateway's identity arrives as a
//!   request extension put there by `server::mtls`, never from the body.
//! - `rate`: the per-gateway token bucket behind 429.
//! - every request on every listener is observed (its id, span, latency metric and log
//!   line) by `hallwatch_service::observe`, with this crate's metrics ([`observer`]).
//! - `probe`: `/healthz`, `/readyz` (public and metrics listeners) and `/metrics` (metrics
//!   listener only).
//! - `serve`: the routers as the server's accept loops serve them, one service per
//!   connection (its peer address or gateway identity in every request), and the metrics
//!   listener; so `server` needs no axum.
//! - `error`: [`ApiError`], the one error type, as JSON.

mod alerts;
mod audit;
mod auth;
mod caller;
mod dashboard;
mod directory;
mod enroll;
mod error;
mod extract;
mod login_limit;
mod me;
mod openapi;
mod page;
mod probe;
mod rate;
mod realtime;
mod schema;
mod serve;
mod sync;
mod totp;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use hallwatch_service::observe::{self, Observer, Served};
use shared::sync::Limits;

use crate::auth::{KeyRing, TotpKey};
use crate::config::Liveness;
use crate::db;
use crate::metrics::Metrics;
use crate::pki::GatewayCa;

pub use caller::{Caller, Capability};
pub use error::ApiError;
pub use login_limit::LoginLimiter;
pub use openapi::{OPENAPI_PATH, document as openapi_document};
pub use probe::{Listeners, READY_TIMEOUT};
pub use rate::RateLimiter;
pub(crate) use serve::{Routes, serve_metrics};
pub use sync::SYNC_MEDIA_TYPE;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Connected as the application role.
    pub pool: db::Pool,
    /// Signs gateway certificates at enrollment.
    pub ca: Arc<GatewayCa>,
    /// Bounds on sync bodies.
    pub limits: Limits,
    /// Per-gateway request budgets.
    pub rate: Arc<RateLimiter>,
    /// How often a sync records that the gateway is alive.
    pub liveness: Liveness,
    /// Signs and verifies access tokens.
    pub keys: Arc<KeyRing>,
    /// Login attempt budgets.
    pub login_limits: Arc<LoginLimiter>,
    /// Hashes and checks passwords, a few at a time.
    pub hasher: Arc<crate::auth::Hasher>,
    /// The Prometheus series; SSE handlers hold `metrics.sse_connection()` while streaming.
    pub metrics: Arc<Metrics>,
    /// Whether each listener is served, for `/readyz`.
    pub listeners: Arc<Listeners>,
    /// This replica's fan-out of realtime events.
    pub realtime: Arc<crate::realtime::Hub>,
    /// Seals and opens TOTP secrets.
    pub totp_key: Arc<TotpKey>,
}

/// The public listener's routes. Serve them with
/// `into_make_service_with_connect_info::<SocketAddr>()`: login limits need the peer.
pub fn public_router(state: AppState) -> Router {
    let (people, document) = openapi::router().split_for_parts();
    let document = Arc::new(document);
    Router::new()
        .route(shared::enroll::ENROLL_PATH, post(enroll::enroll))
        .merge(people)
        .merge(dashboard::router())
        .route(
            OPENAPI_PATH,
            get(move || async move { axum::Json(document.as_ref().clone()) }),
        )
        .route(shared::enroll::ENROLL_CHECK_PATH, post(enroll::check))
        .route("/healthz", get(probe::healthz))
        .route("/readyz", get(probe::readyz))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(from_fn_with_state(
            observer(&state, "public"),
            observe::observe,
        ))
        .with_state(state)
}

/// The mTLS sync listener's routes.
pub fn sync_router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/sync", post(sync::sync))
        .layer(from_fn_with_state(
            observer(&state, "sync"),
            observe::observe,
        ))
        .with_state(state)
}

/// The metrics listener's routes: `/metrics`, `/healthz`, `/readyz`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(probe::metrics))
        .route("/healthz", get(probe::healthz))
        .route("/readyz", get(probe::readyz))
        .layer(from_fn_with_state(
            observer(&state, "metrics"),
            observe::observe,
        ))
        .with_state(state)
}

/// The request-observing middleware's state for `listener`'s routes: the latency into
/// `hallwatch_cloud_http_request_seconds`. Probes, scrapes and sync come every few seconds
/// from every gateway and prober, so they log at debug, unless they failed (5xx).
fn observer(state: &AppState, listener: &'static str) -> Observer {
    let metrics = Arc::clone(&state.metrics);
    Observer {
        span: Arc::new(
            move |id: &str, method: &'static str, route: &str| tracing::info_span!("request", id = %id, listener, method, route = %route),
        ),
        quiet: &["/healthz", "/readyz", "/metrics", "/api/v1/sync"],
        quiet_server_errors: false,
        record: Arc::new(move |served: Served<'_>| {
            metrics.http_request(
                listener,
                served.route,
                served.method,
                served.status,
                served.seconds,
            );
            let (status, ms) = (served.status, served.seconds * 1e3);
            if served.quiet {
                tracing::debug!(status, ms, "request done");
            } else {
                tracing::info!(status, ms, "request done");
            }
        }),
    }
}
