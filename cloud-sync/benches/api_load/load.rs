//! The open-loop load: request `i` is due at `start + i / rate`, whatever happened to the
//! ones before it, and its latency runs from that due time to the end of its answer's body.
//! A stall of the server (or of this client) therefore shows in every request it delays,
//! not only in the one it held (no coordinated omission). Requests go over keep-alive
//! HTTP/1.1 connections, at most [`IN_FLIGHT`] at once; waiting for one counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::mix::{Mix, Request};

/// At most this many requests in flight (and so connections). At 1,000 requests/s a server
/// answering within 50 ms has ~50 in flight; this leaves room for stalls without letting the
/// client become the bottleneck.
pub(crate) const IN_FLIGHT: usize = 256;
/// A request not answered within this long counts as failed.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// One answered (or failed) request.
pub(crate) struct Outcome {
    pub(crate) endpoint: &'static str,
    pub(crate) write: bool,
    /// The status, or 0 when no answer came (refused, reset, timed out).
    pub(crate) status: u16,
    pub(crate) expect: u16,
    /// From the due time to the end of the body, in ms.
    pub(crate) latency_ms: f64,
    /// Within the measured window (not the warm-up).
    pub(crate) measured: bool,
    /// When it finished.
    pub(crate) done: Instant,
    /// The start of the body of an unexpected answer, for the report.
    pub(crate) detail: Option<String>,
}

/// Runs `warmup` then `measure` at `rate` requests/s; every outcome, and the measured
/// window's start.
pub(crate) async fn run(
    base: &str,
    mix: &mut Mix,
    rate: u32,
    warmup: Duration,
    measure: Duration,
) -> (Vec<Outcome>, Instant) {
    let http = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(IN_FLIGHT)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .timeout(TIMEOUT)
        .build()
        .expect("client");
    let interval = Duration::from_secs(1) / rate;
    let warm = (warmup.as_secs_f64() * f64::from(rate)) as u32;
    let total = warm + (measure.as_secs_f64() * f64::from(rate)) as u32;
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now() + Duration::from_millis(50);
    let measured_from = start + interval * warm;
    for i in 0..total {
        let due = start + interval * i;
        tokio::time::sleep_until(due.into()).await;
        let request = mix.draw();
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let (http, tx, base) = (http.clone(), tx.clone(), base.to_owned());
        tokio::spawn(async move {
            let outcome = send(&http, &base, request, due, i >= warm).await;
            drop(permit);
            let _ = tx.send(outcome);
        });
    }
    drop(tx);
    // Every request has its own timeout; this bounds the wait for the last ones.
    let deadline = tokio::time::Instant::now() + TIMEOUT + Duration::from_secs(5);
    let mut outcomes = Vec::with_capacity(total as usize);
    while let Ok(Some(outcome)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        outcomes.push(outcome);
    }
    assert_eq!(
        outcomes.len(),
        total as usize,
        "requests that never finished"
    );
    (outcomes, measured_from)
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    request: Request,
    due: Instant,
    measured: bool,
) -> Outcome {
    let mut builder = http
        .request(request.method, format!("{base}{}", request.path))
        .bearer_auth(&*request.bearer);
    if let Some(body) = &request.body {
        builder = builder.json(body);
    }
    let (status, body) = match builder.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(body) => (status, body),
                Err(e) => (0, e.to_string().into_bytes().into()),
            }
        }
        Err(e) => (0, format!("{e:#}").into_bytes().into()),
    };
    let done = Instant::now();
    let detail = (status != request.expect).then(|| {
        let text = String::from_utf8_lossy(&body);
        text.chars().take(200).collect()
    });
    Outcome {
        endpoint: request.endpoint,
        write: request.write,
        status,
        expect: request.expect,
        latency_ms: done.saturating_duration_since(due).as_secs_f64() * 1000.0,
        measured,
        done,
        detail,
    }
}
