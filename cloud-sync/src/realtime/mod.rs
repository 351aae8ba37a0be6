//! The realtime fan-out of one replica: a [`Hub`] listens on Postgres
//! (`LISTEN hallwatch_realtime`, fed at commit by migration 11's triggers, whichever replica
//! or task wrote) and broadcasts each event to this replica's SSE streams, which filter by
//! their caller's scope. Since every replica listens to the same database, a stream on any
//! replica hears every commit; ids are the database's, so a client may resume on another
//! replica with `Last-Event-ID`.
//!
//! Each event is serialised once here, not once per stream. The listener's connection may
//! drop: on reconnecting, the hub reads what it missed from `realtime_events` before going on,
//! so its streams never see a hole.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use shared::ids::SchoolId;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::realtime::Listener;
use crate::db::realtime::StoredEvent;
use crate::db::{self, Pool, Scope};

/// The channel migration 11's triggers notify.
pub const CHANNEL: &str = "hallwatch_realtime";
/// Events a stream may fall behind the hub before it is told to reload.
pub const BUFFER: usize = 4096;
/// Streams one person may hold open at once (tabs, phone, the office screen).
pub const MAX_STREAMS_PER_USER: usize = 8;

/// One event, ready to send.
#[derive(Debug)]
pub struct Event {
    /// Its number, the SSE `id:`.
    pub id: i64,
    /// The school it concerns (streams filter on it).
    pub school: SchoolId,
    /// The SSE `event:` name.
    pub kind: String,
    /// The SSE `data:`, JSON, serialised once.
    pub data: String,
}

impl Event {
    /// The event of a stored row; `None` for a row naming an invalid school (never written).
    pub fn from_stored(row: StoredEvent) -> Option<Self> {
        let school: SchoolId = row.school_id.parse().ok()?;
        let data = serde_json::json!({
            "id": row.id,
            "school_id": row.school_id,
            "at": row.at,
            "data": row.data,
        })
        .to_string();
        Some(Self {
            id: row.id,
            school,
            kind: row.kind,
            data,
        })
    }
}

/// The replica's fan-out and its per-person stream counts.
#[derive(Debug)]
pub struct Hub {
    sender: broadcast::Sender<Arc<Event>>,
    /// The largest event id broadcast (0 before the first).
    last: AtomicI64,
    streams: Mutex<HashMap<Uuid, usize>>,
    /// Cancelled at shutdown: every stream ends, so draining does not wait for them.
    closing: CancellationToken,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// A hub that hears nothing until [`Hub::run`] runs.
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
            last: AtomicI64::new(0),
            streams: Mutex::new(HashMap::new()),
            closing: CancellationToken::new(),
        }
    }

    /// Completes when the service shuts down.
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// Ends every stream (at shutdown).
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// A receiver of every event broadcast from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// The largest event id broadcast so far.
    pub fn last_id(&self) -> i64 {
        self.last.load(Ordering::Acquire)
    }

    /// Open streams on this replica.
    pub fn open_streams(&self) -> usize {
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }

    /// Counts a stream of `user`; `None` when they hold [`MAX_STREAMS_PER_USER`] already.
    /// The stream ends its count by dropping the guard.
    pub fn open(self: &Arc<Self>, user: Uuid) -> Option<StreamGuard> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let count = streams.entry(user).or_default();
        if *count >= MAX_STREAMS_PER_USER {
            return None;
        }
        *count += 1;
        Some(StreamGuard {
            hub: Arc::clone(self),
            user,
        })
    }

    fn publish(&self, event: Event) {
        if event.id <= self.last_id() {
            return; // Already broadcast (a backfill overlapping a notification).
        }
        self.last.store(event.id, Ordering::Release);
        // No receivers is not an error: nobody is watching.
        let _ = self.sender.send(Arc::new(event));
    }

    /// Listens until `cancel`; reconnects (and catches up from the table) when the
    /// connection drops.
    pub async fn run(self: Arc<Self>, pool: Pool, cancel: CancellationToken) {
        if let Ok(Some((_, max))) = db::realtime::bounds(&pool).await {
            self.last.store(max, Ordering::Release);
        }
        loop {
            let result = tokio::select! {
                () = cancel.cancelled() => return,
                result = self.listen(&pool) => result,
            };
            if let Err(err) = result {
                tracing::warn!(error = %err, "realtime listener failed; reconnecting in 1 s");
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn listen(&self, pool: &Pool) -> Result<(), db::DbError> {
        let mut listener = Listener::connect(pool, CHANNEL).await?;
        // Whatever committed while no one listened.
        self.catch_up(pool).await?;
        loop {
            match listener.next().await? {
                Some(payload) => match serde_json::from_str::<StoredEvent>(&payload) {
                    Ok(row) => {
                        if row.id > self.last_id() + 1 {
                            // A gap: an event committed that we did not hear (this should not
                            // happen while connected; read it rather than lose it).
                            self.catch_up(pool).await?;
                        }
                        if let Some(event) = Event::from_stored(row) {
                            self.publish(event);
                        }
                    }
                    Err(err) => tracing::error!(error = %err, "unreadable realtime notification"),
                },
                // The connection dropped and was made again: notifications in between are
                // lost, the table is not.
                None => self.catch_up(pool).await?,
            }
        }
    }

    async fn catch_up(&self, pool: &Pool) -> Result<(), db::DbError> {
        loop {
            let rows = db::realtime::since(pool, Scope::AllSchools, self.last_id(), 1000).await?;
            let done = rows.len() < 1000;
            for row in rows {
                if let Some(event) = Event::from_stored(row) {
                    self.publish(event);
                }
            }
            if done {
                return Ok(());
            }
        }
    }
}

/// One counted stream; dropping it ends the count.
#[derive(Debug)]
pub struct StreamGuard {
    hub: Arc<Hub>,
    user: Uuid,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut streams = self
            .hub
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = streams.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                streams.remove(&self.user);
            }
        }
    }
}
