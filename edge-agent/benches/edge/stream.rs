//! The dashboard's side: an SSE client on `GET /api/v1/events` that stamps the arrival of
//! each press's `alert` event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::MAX_PRESS_SEQ;
use crate::fleet::{Shared, index};

/// The fields of an `alert` event the benchmark matches on.
#[derive(serde::Deserialize)]
struct AlertJson {
    device_id: Option<String>,
    press_count: u32,
}

/// Reads `GET /api/v1/events` and stamps each alert event's press (by device and
/// `press_count`).
pub(crate) async fn read_events(http: SocketAddr, token: String, shared: Arc<Shared>) {
    let client = reqwest::Client::new();
    let mut response = client
        .get(format!("http://{http}/api/v1/events"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the event stream opens");
    let mut buf: Vec<u8> = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let now = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block);
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
            };
            if field("event:") != Some("alert") {
                continue;
            }
            let Some(data) = field("data:") else {
                continue;
            };
            let alert: AlertJson = serde_json::from_str(data).unwrap();
            let device = alert
                .device_id
                .as_deref()
                .and_then(|id| id.strip_prefix("btn-"))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(device) = device
                && (1..=MAX_PRESS_SEQ).contains(&alert.press_count)
            {
                shared.stamp(&shared.streamed[index(device, alert.press_count)], now);
            }
        }
    }
    eprintln!("edge bench: the event stream ended");
}
