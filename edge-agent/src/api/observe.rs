//! What every request goes through first: a request id (an acceptable incoming `X-Request-Id`,
//! else a new one), echoed in the answer and carried by a `request` span, so every line logged
//! while serving it names it; its latency into `hallwatch_edge_http_request_seconds` by route
//! template; and one log line when it ends (at debug for probes and scrapes, which come every
//! few seconds).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::ApiState;

/// Paths asked by machines on a schedule: logged at debug only.
const QUIET: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

pub(super) async fn observe(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = crate::request_id::accept_or_new(
        request
            .headers()
            .get(crate::request_id::HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    // The template, never the raw path: ids in paths would make a series per alert.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let span = tracing::info_span!("request", id = %id, method, route = %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .http_request(&route, method, status, elapsed.as_secs_f64());
    let ms = elapsed.as_secs_f64() * 1e3;
    span.in_scope(|| {
        if QUIET.contains(&route.as_str()) {
            tracing::debug!(status, ms, "request done");
        } else {
            tracing::info!(status, ms, "request done");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(crate::request_id::HEADER, value);
    }
    response
}

/// The method as a label: the few the API serves, anything else as `other` (a client may
/// send any token as a method; the label's values must stay few).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
