//! A Server-Sent Events client for the tests: reads `GET /api/v1/realtime/events` as a
//! browser's `EventSource` would, one event at a time.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::Value;

/// One event of a stream.
#[derive(Debug, Clone)]
pub(crate) struct Sse {
    pub(crate) event: String,
    pub(crate) id: Option<i64>,
    pub(crate) data: Value,
}

/// An open stream.
pub(crate) struct Stream {
    response: Response,
    buffer: String,
}

/// Opens a stream on `base` (`http://host:port`) with `token`, resuming after `last` when
/// given; panics unless it answers 200 with `text/event-stream`.
pub(crate) async fn open(base: &str, token: &str, last: Option<i64>) -> Stream {
    let response = request(base, token, last).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "an SSE stream"
    );
    Stream {
        response,
        buffer: String::new(),
    }
}

/// The raw answer to a stream request.
pub(crate) async fn request(base: &str, token: &str, last: Option<i64>) -> Response {
    let mut req = reqwest::Client::new()
        .get(format!("{base}/api/v1/realtime/events"))
        .bearer_auth(token);
    if let Some(last) = last {
        req = req.header("last-event-id", last.to_string());
    }
    req.send().await.expect("stream request")
}

impl Stream {
    /// The next event (comments skipped); `None` when the stream ended. Panics after `wait`.
    pub(crate) async fn next_within(&mut self, wait: Duration) -> Option<Sse> {
        tokio::time::timeout(wait, self.next())
            .await
            .expect("an event in time")
    }

    /// The next event; `None` when the stream ended.
    pub(crate) async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
                continue;
            }
            let chunk = self.response.chunk().await.expect("stream read")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }

    /// Events up to and including the first `alert` about `alert_id`, which must come within
    /// `wait`.
    pub(crate) async fn until_alert(&mut self, alert_id: &str, wait: Duration) -> Vec<Sse> {
        let mut seen = Vec::new();
        loop {
            let event = self.next_within(wait).await.expect("stream open");
            let done = event.event == "alert" && event.data["data"]["alert_id"] == alert_id;
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

/// One event block; `None` for a comment-only block (a heartbeat).
fn parse(block: &str) -> Option<Sse> {
    let mut event = None;
    let mut id = None;
    let mut data = String::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().parse().expect("numeric id"));
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    let event = event?;
    Some(Sse {
        event,
        id,
        data: serde_json::from_str(&data).expect("JSON data"),
    })
}
