//! The local event log: what the dashboard's stream carried, kept so a client that reconnects
//! with `Last-Event-ID` gets what it missed from the database rather than from memory.

use shared::UnixMillis;

use super::{Batch, Reader, Store, StoreError, bad_value};

/// What an event is about; also its SSE `event:` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// An alert changed (data: the alert).
    Alert,
    /// A device's health changed (data: the device).
    Device,
    /// A school snapshot was taken (data: the snapshot).
    Snapshot,
    /// Something about the gateway itself, e.g. storage pressure (data: `{"kind", ...}`).
    System,
}

impl Topic {
    /// The stored and streamed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Topic::Alert => "alert",
            Topic::Device => "device",
            Topic::Snapshot => "snapshot",
            Topic::System => "system",
        }
    }

    fn parse(text: &str) -> Result<Topic, StoreError> {
        match text {
            "alert" => Ok(Topic::Alert),
            "device" => Ok(Topic::Device),
            "snapshot" => Ok(Topic::Snapshot),
            "system" => Ok(Topic::System),
            other => Err(bad_value("event topic", other)),
        }
    }
}

/// One logged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its id: increasing, the SSE `id:`.
    pub id: i64,
    /// When.
    pub at: UnixMillis,
    /// What about.
    pub topic: Topic,
    /// The JSON sent.
    pub data: String,
}

impl Batch<'_> {
    /// Appends an event and returns it with its id.
    pub fn append_event(
        &self,
        at: UnixMillis,
        topic: Topic,
        data: String,
    ) -> Result<StoredEvent, StoreError> {
        self.tx.execute(
            "INSERT INTO events (at, topic, data) VALUES (?1, ?2, ?3)",
            (at.get(), topic.as_str(), &data),
        )?;
        Ok(StoredEvent {
            id: self.tx.last_insert_rowid(),
            at,
            topic,
            data,
        })
    }

    /// Deletes events older than `before`, keeping at least the newest `keep`. A client
    /// resuming from before what is left is told to reload (see the API's stream).
    pub fn prune_events(&self, before: UnixMillis, keep: u32) -> Result<usize, StoreError> {
        Ok(self.tx.execute(
            "DELETE FROM events WHERE at < ?1 \
             AND id <= (SELECT COALESCE(MAX(id), 0) FROM events) - ?2",
            (before.get(), keep),
        )?)
    }
}

impl Reader {
    /// Events after `after_id`, oldest first, at most `limit`.
    pub fn events_after(&self, after_id: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        events_after(&self.conn, after_id, limit)
    }

    /// The id of the oldest event still stored (`None` when there is none).
    pub fn oldest_event_id(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT MIN(id) FROM events", [], |r| r.get(0))?)
    }
}

impl Store {
    /// See [`Reader::events_after`].
    pub fn events_after(&self, after_id: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        events_after(&self.conn, after_id, limit)
    }
}

fn events_after(
    conn: &rusqlite::Connection,
    after_id: i64,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT id, at, topic, data FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let rows = stmt.query_map((after_id, limit), |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut events = Vec::new();
    for row in rows {
        let (id, at, topic, data) = row?;
        events.push(StoredEvent {
            id,
            at: UnixMillis::new(at),
            topic: Topic::parse(&topic)?,
            data,
        });
    }
    Ok(events)
}

impl Reader {
    /// The id of the newest event (`None` when there is none).
    pub fn newest_event_id(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_removes_old_events_but_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::layout::DB_FILE);
        let school = "lincoln-high".parse().unwrap();
        let mut store = Store::create(&path, &school, UnixMillis::new(0)).unwrap();
        let tx = store.batch().unwrap();
        for i in 0..10 {
            tx.append_event(UnixMillis::new(i * 1_000), Topic::Alert, "{}".into())
                .unwrap();
        }
        // Older than 5 s: the first five; none of the newest three would be touched anyway.
        assert_eq!(tx.prune_events(UnixMillis::new(5_000), 3).unwrap(), 5);
        // Everything but the last is old now, but the newest three stay.
        assert_eq!(tx.prune_events(UnixMillis::new(9_500), 3).unwrap(), 2);
        tx.commit().unwrap();
        let left: Vec<i64> = store
            .events_after(0, 100)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(left, [8, 9, 10]);
    }
}
