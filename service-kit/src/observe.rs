//! What every request goes through first, on every listener of both services: a request id
//! (an acceptable incoming `X-Request-Id` — gateways send one with each sync request — else a
//! new UUIDv7), echoed in the answer and carried by a `request` span, so every line logged
//! while serving it names it; its latency handed to the service's metrics by route template,
//! method and status; and, through the service's `record`, one log line when it ends (at
//! debug for the routes machines ask on a schedule, at info for the rest). The service logs
//! that line itself, so it carries the service's own target (`RUST_LOG=cloud_sync=info`
//! keeps it), inside the request's span.
//!
//! Install it with `axum::middleware::from_fn_with_state(observer, observe)` as the router's
//! outermost layer, so the route template (`MatchedPath`) is known.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::request_id;

/// One finished request, as the service's metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    /// The route template (`/api/v1/alerts/{id}`), or `unmatched`: never the raw path, whose
    /// ids would make a series per resource.
    pub route: &'a str,
    /// The method as a label ([`method_label`]).
    pub method: &'static str,
    /// The answer's status code.
    pub status: u16,
    /// From the request's arrival to its answer's head.
    pub seconds: f64,
    /// Whether its log line belongs at debug ([`Observer::quiet`]) rather than info.
    pub quiet: bool,
}

/// Makes a request's span from its id, method label and route template.
pub type MakeSpan = dyn Fn(&str, &'static str, &str) -> tracing::Span + Send + Sync;

/// The middleware's state: what a service's listener does with each finished request.
#[derive(Clone)]
pub struct Observer {
    /// Makes the request's `request` span from its id, method label and route template. The
    /// service makes it, so the span has the service's own target (a `RUST_LOG` naming the
    /// service's crate keeps it) and its own fields (the cloud adds its listener's name).
    pub span: Arc<MakeSpan>,
    /// Routes machines ask on a schedule (probes, scrapes): their line is logged at debug.
    pub quiet: &'static [&'static str],
    /// Whether a quiet route's server error (5xx) is logged at debug too. A service whose
    /// probes fail on a schedule while it starts says so elsewhere; one whose failures are rare
    /// wants each at info.
    pub quiet_server_errors: bool,
    /// Records the request in the service's metrics and logs its line; called inside the
    /// request's span.
    pub record: Arc<dyn Fn(Served<'_>) + Send + Sync>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("quiet", &self.quiet)
            .field("quiet_server_errors", &self.quiet_server_errors)
            .finish_non_exhaustive()
    }
}

impl Observer {
    /// Whether the line for `route` answered with `status` is logged at debug.
    fn is_quiet(&self, route: &str, status: u16) -> bool {
        self.quiet.contains(&route) && (self.quiet_server_errors || status < 500)
    }
}

/// The middleware (see the module docs).
pub async fn observe(State(observer): State<Observer>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id::accept_or_new(
        request
            .headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let span = (observer.span)(&id, method, &route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let served = Served {
        route: &route,
        method,
        status,
        seconds: elapsed.as_secs_f64(),
        quiet: observer.is_quiet(&route, status),
    };
    span.in_scope(|| (observer.record)(served));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(request_id::HEADER, value);
    }
    response
}

/// The method as a label: the few HTTP defines, anything else as `other` (a client may send
/// any token as a method; the label's values must stay few).
pub fn method_label(method: &Method) -> &'static str {
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    type Seen = Arc<Mutex<Vec<(String, &'static str, u16)>>>;

    fn app(seen: &Seen) -> Router {
        let seen = Arc::clone(seen);
        let observer = Observer {
            span: Arc::new(|id: &str, method: &'static str, route: &str| {
                tracing::info_span!("request", id, method, route)
            }),
            quiet: &["/healthz"],
            quiet_server_errors: false,
            record: Arc::new(move |served: Served<'_>| {
                seen.lock()
                    .unwrap()
                    .push((served.route.to_owned(), served.method, served.status));
            }),
        };
        Router::new()
            .route("/items/{id}", get(|| async { "item" }))
            .layer(axum::middleware::from_fn_with_state(observer, observe))
    }

    async fn call(app: Router, method: Method, path: &str, id: Option<&str>) -> Response {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(id) = id {
            request = request.header(request_id::HEADER, id);
        }
        app.oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_acceptable_incoming_id_is_echoed_and_the_route_template_recorded() {
        let seen = Seen::default();
        let response = call(app(&seen), Method::GET, "/items/17", Some("gw-1:9")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[request_id::HEADER], "gw-1:9");
        assert_eq!(
            *seen.lock().unwrap(),
            [("/items/{id}".to_owned(), "GET", 200)]
        );
    }

    #[tokio::test]
    async fn an_unacceptable_id_is_replaced_and_unknown_routes_and_methods_stay_few_labels() {
        let seen = Seen::default();
        let response = call(
            app(&seen),
            Method::from_bytes(b"BREW").unwrap(),
            "/nowhere/1",
            Some("not an id"),
        )
        .await;
        let echoed = response.headers()[request_id::HEADER].to_str().unwrap();
        assert_ne!(echoed, "not an id");
        assert!(uuid::Uuid::parse_str(echoed).is_ok(), "{echoed}");
        assert_eq!(
            *seen.lock().unwrap(),
            [("unmatched".to_owned(), "other", 404)]
        );
    }

    #[test]
    fn quiet_routes_are_quiet_unless_they_fail_on_a_loud_listener() {
        let mut observer = Observer {
            span: Arc::new(|_: &str, _: &'static str, _: &str| tracing::Span::none()),
            quiet: &["/healthz"],
            quiet_server_errors: false,
            record: Arc::new(|_: Served<'_>| {}),
        };
        assert!(observer.is_quiet("/healthz", 200));
        assert!(!observer.is_quiet("/healthz", 503));
        assert!(!observer.is_quiet("/items/{id}", 200));
        observer.quiet_server_errors = true;
        assert!(observer.is_quiet("/healthz", 503));
    }

    #[test]
    fn methods_beyond_the_standard_ones_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::TRACE), "other");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
