//! `GET /api/v1/events`: the dashboard's stream (Server-Sent Events) of every alert, device and
//! snapshot change, each with its stored id.
//!
//! The stream subscribes to the engine's live events *before* reading the stored ones after
//! `Last-Event-ID`, so nothing committed in between is missed; ids at or below the last one
//! sent are skipped, so nothing is sent twice. A subscriber that falls behind the live buffer
//! catches up from the database. A client whose `Last-Event-ID` is older than anything still
//! stored gets one `reset` event: reload, then follow the stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, ApiState};
use crate::store::StoredEvent;

/// Comment lines keep proxies and the client's reconnect logic from taking silence for a dead
/// connection.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Stored events read per query while catching up.
const CATCH_UP_PAGE: u32 = 500;

/// Opens the stream, resuming after `Last-Event-ID` when given.
pub(super) async fn stream(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let last = hallwatch_service::sse::last_event_id(&headers)
        .map_err(|bad| ApiError::bad_request(bad.to_string()))?;
    let live = state.engine.subscribe();
    let mut feed = Feed {
        state: state.clone(),
        live,
        last: 0,
        pending: VecDeque::new(),
        catching_up: true,
    };
    match last {
        // A new client starts with what happens from now on; the lists come from the REST
        // endpoints.
        None => {
            feed.last = state.read(|db| db.newest_event_id()).await?.unwrap_or(0);
        }
        Some(last) => {
            feed.last = last;
            let oldest = state.read(|db| db.oldest_event_id()).await?;
            if oldest.is_some_and(|oldest| oldest > last + 1) {
                feed.pending.push_back(Item::Reset);
            }
        }
    }
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(event), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("")))
}

enum Item {
    Stored(StoredEvent),
    Reset,
}

struct Feed {
    state: ApiState,
    live: broadcast::Receiver<StoredEvent>,
    last: i64,
    pending: VecDeque<Item>,
    catching_up: bool,
}

impl Feed {
    /// The next event to send; `None` ends the stream (shutdown, or the database failed).
    async fn next(&mut self) -> Option<Event> {
        loop {
            match self.pending.pop_front() {
                Some(Item::Reset) => {
                    return Some(
                        Event::default()
                            .event("reset")
                            .data("events were missed; reload the lists"),
                    );
                }
                Some(Item::Stored(event)) => {
                    if event.id > self.last {
                        self.last = event.id;
                        return Some(to_sse(event));
                    }
                    continue;
                }
                None => {}
            }
            if self.catching_up {
                let after = self.last;
                let page = self
                    .state
                    .read(move |db| db.events_after(after, CATCH_UP_PAGE))
                    .await
                    .ok()?;
                if page.is_empty() {
                    self.catching_up = false;
                } else {
                    self.pending.extend(page.into_iter().map(Item::Stored));
                }
                continue;
            }
            let received = tokio::select! {
                () = self.state.shutdown.cancelled() => return None,
                received = self.live.recv() => received,
            };
            match received {
                Ok(event) => self.pending.push_back(Item::Stored(event)),
                Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

fn to_sse(event: StoredEvent) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event(event.topic.as_str())
        .data(event.data)
}
