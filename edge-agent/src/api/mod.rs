//! The local API and dashboard (axum): the only module that imports axum.
//!
//! - here: the shared state, the router and serving it until shutdown;
//! - `assets`: the embedded front-office page (`assets/`);
//! - `auth`: the operator token;
//! - `alerts`: listing alerts, one alert with its history, acknowledge/resolve/cancel;
//! - `events`: the dashboard's event stream (SSE) with `Last-Event-ID` resume;
//! - `status`: the school snapshot and the device list;
//! - every request is observed (its id, span, latency metric and log line) by
//!   `hallwatch_service::observe`;
//! - `probe`: `/readyz` and `/metrics`;
//! - `error`: [`ApiError`], JSON errors with the right status.
//!
//! Reads go to the database through read-only connections (WAL lets them read while the engine
//! writes); changes go to the engine, which answers once they are committed.

mod alerts;
mod assets;
mod auth;
mod error;
mod events;
mod probe;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use hallwatch_service::observe::{self, Observer, Served};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use shared::ids::SchoolId;

use crate::engine::EngineHandle;
use crate::gate::GateHandle;
use crate::metrics::Metrics;
use crate::store::{Reader, StoreError};
use crate::sync::SyncStatus;

pub use error::ApiError;

/// Largest request body accepted (a note on an alert is the largest thing anyone sends).
const MAX_BODY_BYTES: usize = 16 * 1024;
/// Read connections kept open between requests.
const MAX_IDLE_READERS: usize = 4;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    engine: EngineHandle,
    school: SchoolId,
    db_path: Arc<PathBuf>,
    token: Arc<str>,
    readers: Arc<Mutex<Vec<Reader>>>,
    sync: Arc<SyncStatus>,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    gate: GateHandle,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("ApiState")
            .field("db_path", &self.db_path)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// State for a gateway whose database is at `db_path` and operator token is `token`.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, each part named there"
    )]
    pub fn new(
        engine: EngineHandle,
        school: SchoolId,
        db_path: PathBuf,
        token: String,
        sync: Arc<SyncStatus>,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
        gate: GateHandle,
    ) -> ApiState {
        ApiState {
            engine,
            school,
            db_path: Arc::new(db_path),
            token: token.into(),
            readers: Arc::new(Mutex::new(Vec::new())),
            sync,
            shutdown,
            metrics,
            gate,
        }
    }

    /// Runs `query` on a read connection, off the async workers.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Reader) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let pooled = state.readers.lock().ok().and_then(|mut idle| idle.pop());
            let reader = match pooled {
                Some(reader) => reader,
                None => Reader::open(&state.db_path)?,
            };
            let result = query(&reader);
            if let Ok(mut idle) = state.readers.lock()
                && idle.len() < MAX_IDLE_READERS
            {
                idle.push(reader);
            }
            result
        })
        .await;
        match outcome {
            Ok(result) => result.map_err(ApiError::from),
            Err(e) => Err(ApiError::internal(&e)),
        }
    }
}

/// The router: `/healthz` and `/readyz` open, `/metrics` open to loopback clients only,
/// `/api/v1/*` behind the operator token; every request observed (`observe`).
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}", get(alerts::detail))
        .route("/alerts/{id}/{action}", post(alerts::act))
        .route("/events", get(events::stream))
        .route("/snapshot", get(status::snapshot))
        .route("/devices", get(status::devices))
        .route("/sync", get(status::sync))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(probe::readyz))
        .route("/metrics", get(probe::metrics))
        .route("/", get(assets::index))
        .route("/app.js", get(assets::app_js))
        .route("/style.css", get(assets::style))
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            observer(&state.metrics),
            observe::observe,
        ))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Binds the dashboard's listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the API on `listener` until `shutdown` is cancelled; open event streams end then too.
pub async fn serve(listener: TcpListener, state: ApiState) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    // The event stream writes one small frame per event; with Nagle's algorithm a frame
    // waits for the client's (delayed) acknowledgement of the previous one.
    let listener =
        axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY on a dashboard connection");
            }
        });
    // The peer's address: `/metrics` answers loopback clients without the token.
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// The request-observing middleware's state: the latency into `metrics`. Probes and scrapes,
/// which machines ask every few seconds, log at debug whatever they answer: a failing
/// `/readyz` says why in its body and in the agent's own lines.
fn observer(metrics: &Arc<Metrics>) -> Observer {
    let metrics = Arc::clone(metrics);
    Observer {
        span: Arc::new(
            |id: &str, method: &'static str, route: &str| tracing::info_span!("request", id = %id, method, route = %route),
        ),
        quiet: &["/healthz", "/readyz", "/metrics"],
        quiet_server_errors: true,
        record: Arc::new(move |served: Served<'_>| {
            metrics.http_request(served.route, served.method, served.status, served.seconds);
            let (status, ms) = (served.status, served.seconds * 1e3);
            if served.quiet {
                tracing::debug!(status, ms, "request done");
            } else {
                tracing::info!(status, ms, "request done");
            }
        }),
    }
}
