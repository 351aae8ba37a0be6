//! `GET /api/v1/realtime/events`: the caller's live events as Server-Sent Events.
//!
//! - Every event has an `id:` (the database's, in commit order) and an `event:` name (`alert`,
//!   `snapshot`, `gateway`, `device`, `request`); `data:` is
//!   `{"id", "school_id", "at", "data": {...}}`.
//! - The first message is `event: ready` with the id the stream starts after, so a client
//!   that hears nothing else still has a point to resume from.
//! - `Last-Event-ID: N` (what browsers send when they reconnect) first replays the stored
//!   events after N in the caller's scope. A client too far behind (N older than what is
//!   kept, more than [`MAX_REPLAY`] events to replay, or a stream that fell [`BUFFER`] events
//!   behind the live fan-out) gets `event: reload` and the stream ends: reload the page's data
//!   from the REST API and reconnect without `Last-Event-ID`.
//! - A comment every 15 s keeps proxies from closing an idle stream.
//! - When the access token expires the stream sends `event: token_expired` and ends; the
//!   client refreshes its token and reconnects with `Last-Event-ID`.
//! - Only events of schools in the caller's scope are sent (the same `UserScope` as the REST
//!   handlers; the replay reads under it, so row-level security bounds it too).
//! - At most [`MAX_STREAMS_PER_USER`] streams per person at once (429 beyond).
//!
//! [`BUFFER`]: crate::realtime::BUFFER

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::stream;
use tokio::sync::broadcast;

use super::{ApiError, AppState, Caller};
use crate::db;
use crate::realtime::{Event, MAX_STREAMS_PER_USER, StreamGuard};

/// The most stored events a reconnecting stream replays; further behind, it reloads.
pub(super) const MAX_REPLAY: i64 = 1_000;
/// How often an idle stream sends a comment.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(15);

/// `GET /api/v1/realtime/events`.
#[utoipa::path(get, path = "/api/v1/realtime/events", tag = "realtime",
    security(("bearer" = [])),
    params(("Last-Event-ID" = Option<i64>, Header, description = "The last event id received; replays what followed")),
    responses((status = 200, content_type = "text/event-stream", description = "The caller's events"),
        (status = 400, description = "Last-Event-ID is not a number"),
        (status = 429, description = "Too many open streams")))]
pub(super) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let resume = hallwatch_service::sse::last_event_id(&headers).map_err(|_| {
        ApiError::bad_request(
            "invalid_last_event_id",
            "Last-Event-ID must be the id of an event this stream sent",
        )
    })?;
    let Some(guard) = state.realtime.open(caller.user_id) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!("at most {MAX_STREAMS_PER_USER} live streams per person; close another tab"),
        ));
    };
    // Subscribe before reading the replay, so nothing committed in between is missed (the
    // overlap is skipped by id).
    let live = state.realtime.subscribe();
    let start = state.realtime.last_id();
    let mut opening = Vec::new();
    let mut after = start;
    match resume {
        None => opening.push(Item::Ready(start)),
        Some(n) => {
            let replay = replay(&state, &caller, n).await?;
            match replay {
                Some(events) => {
                    after = events.last().map_or(n.max(0), |e| e.id).max(n);
                    opening.push(Item::Ready(n));
                    opening.extend(events.into_iter().map(|e| Item::Event(Arc::new(e))));
                }
                None => opening.push(Item::Reload("too far behind; reload and reconnect")),
            }
        }
    }
    let deadline = token_deadline(caller.token_expires_at);
    let stream = Streaming {
        caller,
        live,
        after,
        opening: opening.into_iter(),
        deadline: Box::pin(tokio::time::sleep(deadline)),
        closing: state.realtime.closing(),
        done: false,
        _guard: guard,
        _counted: state.metrics.sse_connection(),
    };
    Ok(Sse::new(stream::unfold(stream, Streaming::next))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat")))
}

/// The stored events after `n` in the caller's scope, or `None` when the client is too far
/// behind to catch up that way.
async fn replay(state: &AppState, caller: &Caller, n: i64) -> Result<Option<Vec<Event>>, ApiError> {
    if let Some((oldest, _)) = db::realtime::bounds(&state.pool).await?
        && n + 1 < oldest
    {
        return Ok(None); // What followed n was deleted.
    }
    let rows = db::realtime::since(&state.pool, &caller.scope, n, MAX_REPLAY + 1).await?;
    if rows.len() as i64 > MAX_REPLAY {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter().filter_map(Event::from_stored).collect(),
    ))
}

fn token_deadline(expires_at: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(expires_at.saturating_sub(now))
}

enum Item {
    Ready(i64),
    Event(Arc<Event>),
    Reload(&'static str),
}

struct Streaming {
    caller: Caller,
    live: broadcast::Receiver<Arc<Event>>,
    /// The largest id sent (or skipped as out of scope).
    after: i64,
    opening: std::vec::IntoIter<Item>,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    closing: tokio_util::sync::CancellationToken,
    done: bool,
    _guard: StreamGuard,
    /// The `hallwatch_cloud_sse_connections` gauge counts this stream while it lives.
    _counted: crate::metrics::SseConnection,
}

impl Streaming {
    async fn next(mut self) -> Option<(Result<SseEvent, Infallible>, Self)> {
        if self.done {
            return None;
        }
        if let Some(item) = self.opening.next() {
            let event = self.render(item);
            return Some((Ok(event), self));
        }
        loop {
            let received = tokio::select! {
                () = &mut self.deadline => {
                    self.done = true;
                    let end = SseEvent::default()
                        .event("token_expired")
                        .data("{\"reason\":\"the access token expired; refresh it and reconnect with Last-Event-ID\"}");
                    return Some((Ok(end), self));
                }
                () = self.closing.cancelled() => return None,
                received = self.live.recv() => received,
            };
            match received {
                Ok(event) => {
                    if event.id <= self.after {
                        continue;
                    }
                    self.after = event.id;
                    if !self.caller.scope.covers(&event.school) {
                        continue;
                    }
                    let rendered = self.render(Item::Event(event));
                    return Some((Ok(rendered), self));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let rendered = self.render(Item::Reload(
                        "this stream fell behind; reload and reconnect",
                    ));
                    return Some((Ok(rendered), self));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn render(&mut self, item: Item) -> SseEvent {
        match item {
            Item::Ready(after) => SseEvent::default()
                .event("ready")
                .id(after.to_string())
                .data(format!("{{\"after\":{after}}}")),
            Item::Event(event) => {
                if event.id > self.after {
                    self.after = event.id;
                }
                SseEvent::default()
                    .event(event.kind.as_str())
                    .id(event.id.to_string())
                    .data(event.data.as_str())
            }
            Item::Reload(reason) => {
                self.done = true;
                SseEvent::default()
                    .event("reload")
                    .data(format!("{{\"reason\":\"{reason}\"}}"))
            }
        }
    }
}
