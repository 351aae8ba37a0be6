//! The HTTP side: the only module that imports axum.
//!
//! - `enroll`: `POST /api/v1/enroll` on the public listener.
//! - `sync`: `POST /api/v1/sync` on the mTLS listener; the gateway's identity arrives as a
//!   request extension put there by `server::mtls`, never from the body.
//! - `rate`: the per-gateway token bucket behind 429.
//! - `error`: [`ApiError`], the one error type, as JSON.

mod enroll;
mod error;
mod rate;
mod sync;

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use shared::sync::Limits;
use sqlx::PgPool;

use crate::config::Liveness;
use crate::pki::GatewayCa;

pub use error::ApiError;
pub use rate::RateLimiter;
pub use sync::SYNC_MEDIA_TYPE;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Connected as the application role.
    pub pool: PgPool,
    /// Signs gateway certificates at enrollment.
    pub ca: Arc<GatewayCa>,
    /// Bounds on sync bodies.
    pub limits: Limits,
    /// Per-gateway request budgets.
    pub rate: Arc<RateLimiter>,
    /// How often a sync records that the gateway is alive.
    pub liveness: Liveness,
}

/// The public listener's routes.
pub fn public_router(state: AppState) -> Router {
    Router::new()
        .route(shared::enroll::ENROLL_PATH, post(enroll::enroll))
        .with_state(state)
}

/// The mTLS sync listener's routes.
pub fn sync_router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/sync", post(sync::sync))
        .with_state(state)
}
