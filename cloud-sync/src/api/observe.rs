//! What every request goes through first, on every listener: a request id (an acceptable
//! incoming `X-Request-Id` — gateways send one with each sync request — else a new UUIDv7),
//! echoed in the answer and carried by a `request` span, so every line logged while serving it
//! names it; its latency into `hallwatch_cloud_http_request_seconds` by listener, route
//! template and status class; and one log line when it ends (at debug for probes, scrapes and
//! sync, which come every few seconds from every gateway; at info for the rest).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::metrics::Metrics;

/// Which listener a router serves, for the metric's `listener` label.
#[derive(Debug, Clone)]
pub(super) struct Observer {
    pub(super) metrics: Arc<Metrics>,
    pub(super) listener: &'static str,
}

/// Routes asked by machines on a schedule: their lines are logged at debug.
const QUIET: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/api/v1/sync"];

pub(super) async fn observe(
    State(observer): State<Observer>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(shared::request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(shared::request_id::accept)
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    // The template, never the raw path: ids in paths would make a series per resource.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let span = tracing::info_span!("request", id = %id, listener = observer.listener, method, route = %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    observer.metrics.http_request(
        observer.listener,
        &route,
        method,
        status,
        elapsed.as_secs_f64(),
    );
    let ms = elapsed.as_secs_f64() * 1e3;
    span.in_scope(|| {
        if QUIET.contains(&route.as_str()) && status < 500 {
            tracing::debug!(status, ms, "request done");
        } else {
            tracing::info!(status, ms, "request done");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(shared::request_id::HEADER, value);
    }
    response
}

/// The method as a label: the few HTTP defines, anything else as `other` (a client may send
/// any token as a method; the label's values must stay few).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
