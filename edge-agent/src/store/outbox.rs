//! The sync outbox: records for the cloud, appended in the same transaction as the change they
//! describe, so a change is never committed without its record nor a record without its change.
//! Reading and sending them is the sync loop's (issue #6).

use shared::UnixMillis;
use shared::sync::RecordBody;

use super::{Batch, Store, StoreError};

/// Which queue a record waits in: alerts are sent before telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Alert log entries and command results: sent first, never dropped.
    Alert,
    /// Device health and snapshots: may be thinned under storage pressure.
    Telemetry,
}

impl Lane {
    /// The name stored in `outbox.lane`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Lane::Alert => "alert",
            Lane::Telemetry => "telemetry",
        }
    }

    /// The lane a record belongs in.
    pub fn of(body: &RecordBody) -> Lane {
        match body {
            RecordBody::AlertEvent(_) | RecordBody::CommandResult(_) => Lane::Alert,
            RecordBody::DeviceHealth(_) | RecordBody::Snapshot(_) => Lane::Telemetry,
        }
    }
}

impl Batch<'_> {
    /// Appends `body` to the outbox and returns its gateway-wide `seq`.
    pub fn append_outbox(&self, at: UnixMillis, body: &RecordBody) -> Result<i64, StoreError> {
        let bytes = postcard::to_stdvec(body).map_err(|e| StoreError::BadValue {
            what: "outbox record",
            value: e.to_string(),
        })?;
        self.tx.execute(
            "INSERT INTO outbox (lane, at, body) VALUES (?1, ?2, ?3)",
            (Lane::of(body).as_str(), at.get(), bytes),
        )?;
        Ok(self.tx.last_insert_rowid())
    }
}

impl Store {
    /// The lane of every outbox record as stored, in seq order.
    pub fn outbox_lanes(&self) -> Result<Vec<Lane>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT lane FROM outbox ORDER BY seq")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut lanes = Vec::new();
        for lane in rows {
            lanes.push(match lane?.as_str() {
                "alert" => Lane::Alert,
                "telemetry" => Lane::Telemetry,
                other => return Err(super::bad_value("outbox lane", other)),
            });
        }
        Ok(lanes)
    }

    /// Outbox records after `after_seq`, oldest first, at most `limit`.
    pub fn outbox_after(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, UnixMillis, RecordBody)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, at, body FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map((after_seq, limit), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut records = Vec::new();
        for row in rows {
            let (seq, at, bytes) = row?;
            let body = postcard::from_bytes(&bytes).map_err(|e| StoreError::BadValue {
                what: "outbox record",
                value: format!("seq {seq}: {e}"),
            })?;
            records.push((seq, UnixMillis::new(at), body));
        }
        Ok(records)
    }
}
