//! The stored realtime events (`realtime_events`, numbered in commit order by the trigger of
//! migration 11): what a reconnecting stream missed, and their retention.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgListener;
use sqlx::{FromRow, PgPool};

use super::{DbError, Scope, TenantScope, begin};

/// A stored event, as `pg_notify` announced it.
#[derive(Debug, Clone, FromRow, serde::Deserialize)]
pub struct StoredEvent {
    /// Its number: later commits have larger ones.
    #[sqlx(rename = "event_id")]
    pub id: i64,
    /// The school it concerns.
    pub school_id: String,
    /// `alert`, `snapshot`, `gateway`, `device` or `request`.
    pub kind: String,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// What changed.
    pub data: Value,
}

/// A connection of its own that hears one channel's notifications (`LISTEN`), fed at commit by
/// migration 11's triggers.
#[derive(Debug)]
pub struct Listener(PgListener);

impl Listener {
    /// Connects with `pool`'s options and listens on `channel`.
    pub async fn connect(pool: &PgPool, channel: &str) -> Result<Listener, DbError> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(channel).await?;
        Ok(Listener(listener))
    }

    /// The next notification's payload; `None` when the connection dropped and was made
    /// again (notifications sent in between are lost; the table is not).
    pub async fn next(&mut self) -> Result<Option<String>, DbError> {
        Ok(self
            .0
            .try_recv()
            .await?
            .map(|note| note.payload().to_owned()))
    }
}

/// Events numbered after `after` that `scope` sees, oldest first, at most `limit`.
pub async fn since(
    pool: &PgPool,
    scope: impl TenantScope,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let rows = sqlx::query_as(
        "SELECT event_id, school_id, kind, at, data FROM realtime_events \
         WHERE event_id > $1 ORDER BY event_id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// The smallest and largest numbers still stored (`None` when there are none).
pub async fn bounds(pool: &PgPool) -> Result<Option<(i64, i64)>, DbError> {
    let mut tx = begin(pool, Scope::AllSchools).await?;
    let row: (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT min(event_id), max(event_id) FROM realtime_events")
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(row.0.zip(row.1))
}

/// Deletes events older than `keep_hours`; returns how many.
pub async fn prune(pool: &PgPool, keep_hours: i32) -> Result<u64, DbError> {
    let mut tx = begin(pool, Scope::AllSchools).await?;
    let deleted = sqlx::query(
        "DELETE FROM realtime_events WHERE event_id IS NOT NULL \
         AND at < now() - make_interval(hours => $1)",
    )
    .bind(keep_hours)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}
