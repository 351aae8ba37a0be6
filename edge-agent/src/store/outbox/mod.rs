//! The sync outbox: records for the cloud, appended in the same transaction as the change they
//! describe, so a change is never committed without its record nor a record without its change.
//!
//! Each lane ([`Lane`]) numbers its records from its own counter (`outbox_lanes.head`, which
//! never goes back), and every record carries the epoch it was written in (one per agent
//! start, [`Store::start_epoch`]). The sync loop reads the oldest records of a lane
//! ([`Reader::outbox_batch`]); the engine deletes them once the cloud acknowledges them
//! ([`Batch::ack_outbox`]), so the outbox holds exactly what the cloud has not confirmed.
//! Records are removed unsent only by replacing them with a `Dropped` record that spans their
//! numbers ([`Batch::dead_letter`]), so the cloud sees every number of a lane exactly once.

use rusqlite::OptionalExtension;
use shared::UnixMillis;
use shared::ids::{CommandId, Epoch, Seq};
use shared::sync::{CommandOutcome, DropReason, Dropped, Lane, Record, RecordBody};

mod policy;
#[cfg(test)]
mod tests;

use super::{Batch, Reader, Store, StoreError};

/// The text stored in `outbox.kind` for a record body.
fn kind_name(body: &RecordBody) -> &'static str {
    match body {
        RecordBody::AlertEvent(_) => "alert_event",
        RecordBody::DeviceHealth(_) => "device_health",
        RecordBody::Snapshot(_) => "snapshot",
        RecordBody::CommandResult(_) => "command_result",
        RecordBody::Dropped(_) => "dropped",
    }
}

fn encode(body: &RecordBody) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(body).map_err(|e| StoreError::BadValue {
        what: "outbox record",
        value: e.to_string(),
    })
}

fn decode(lane: Lane, seq: i64, bytes: &[u8]) -> Result<RecordBody, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::UnreadableRecord {
        lane,
        seq: seq_from(seq),
        reason: e.to_string(),
    })
}

const fn lane_index(lane: Lane) -> usize {
    match lane {
        Lane::Alert => 0,
        Lane::Telemetry => 1,
    }
}

fn seq_from(n: i64) -> Seq {
    Seq::new(u64::try_from(n).unwrap_or(0))
}

fn seq_to(seq: Seq) -> i64 {
    i64::try_from(seq.get()).unwrap_or(i64::MAX)
}

fn epoch_from(n: i64) -> Result<Epoch, StoreError> {
    Epoch::from_i64(n).ok_or_else(|| super::bad_value("epoch", &n.to_string()))
}

/// An outbox row as the thinning policies see it.
#[derive(Debug)]
struct OutboxRow {
    seq: Seq,
    /// The last seq it stands for: itself, or the end of a dropped run.
    through: Seq,
    epoch: Epoch,
    at: UnixMillis,
    snapshot: bool,
    dropped: bool,
}

/// How much of one lane waits for the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneBacklog {
    /// The lane.
    pub lane: Lane,
    /// Records not yet acknowledged.
    pub records: u64,
    /// Their stored size in bytes (bodies only).
    pub bytes: u64,
    /// When the oldest of them happened.
    pub oldest_at: Option<UnixMillis>,
}

impl Store {
    /// Starts a new epoch with a fresh random number: every record appended from now on
    /// carries it. The agent calls this once at every start, before the engine writes.
    pub fn start_epoch(&mut self, now: UnixMillis) -> Result<Epoch, StoreError> {
        let rng = ring::rand::SystemRandom::new();
        loop {
            let bytes = ring::rand::generate::<[u8; 8]>(&rng)
                .map_err(|_| StoreError::BadValue {
                    what: "random epoch",
                    value: "the system's random source failed".into(),
                })?
                .expose();
            let Some(epoch) = Epoch::new(u64::from_le_bytes(bytes)) else {
                continue;
            };
            let inserted = self.conn.execute(
                "INSERT OR IGNORE INTO epochs (epoch, started_at) VALUES (?1, ?2)",
                (epoch.to_i64(), now.get()),
            )?;
            if inserted == 1 {
                self.epoch = Some(epoch);
                return Ok(epoch);
            }
        }
    }

    /// The epoch records are written under, once [`Store::start_epoch`] ran.
    pub fn epoch(&self) -> Option<Epoch> {
        self.epoch
    }

    /// Every outbox record of `lane`, oldest first, with its epoch (for tests and tools).
    pub fn outbox(&self, lane: Lane) -> Result<Vec<(Epoch, Record)>, StoreError> {
        read_records(&self.conn, lane, false, u32::MAX, usize::MAX)
    }

    /// The epochs this database has written under, oldest first.
    pub fn epochs(&self) -> Result<Vec<Epoch>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT epoch FROM epochs ORDER BY started_at, rowid")?;
        let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
        rows.map(|n| epoch_from(n?)).collect()
    }
}

impl Batch<'_> {
    /// Appends `body` to its lane of the outbox under the current epoch; returns its seq.
    pub fn append_outbox(&self, at: UnixMillis, body: &RecordBody) -> Result<Seq, StoreError> {
        let lane = body.lane().ok_or_else(|| StoreError::BadValue {
            what: "outbox record",
            value: "a dropped run is written by dead_letter, not appended".into(),
        })?;
        self.insert_outbox(lane, at, body)
    }

    fn insert_outbox(
        &self,
        lane: Lane,
        at: UnixMillis,
        body: &RecordBody,
    ) -> Result<Seq, StoreError> {
        let epoch = self.epoch.ok_or(StoreError::NoEpoch)?;
        let mut appended = self.appended.get();
        appended[lane_index(lane)] = true;
        self.appended.set(appended);
        let seq: i64 = self.tx.query_row(
            "UPDATE outbox_lanes SET head = head + 1 WHERE lane = ?1 RETURNING head",
            [lane.as_str()],
            |r| r.get(0),
        )?;
        self.tx.execute(
            "INSERT INTO outbox (lane, seq, epoch, at, kind, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (
                lane.as_str(),
                seq,
                epoch.to_i64(),
                at.get(),
                kind_name(body),
                encode(body)?,
            ),
        )?;
        Ok(seq_from(seq))
    }

    /// The lanes this transaction appended to (for the sync loop's wake-up after commit).
    pub fn appended_lanes(&self) -> impl Iterator<Item = Lane> + use<> {
        let appended = self.appended.get();
        Lane::ALL
            .iter()
            .copied()
            .filter(move |&lane| appended[lane_index(lane)])
    }

    /// Deletes what the cloud acknowledged: `lane`'s records of `epoch` up to `through`. A
    /// dropped run that reaches past `through` (it was made while its first records were on
    /// their way) keeps its remainder, so the cloud is still told of those numbers.
    pub fn ack_outbox(&self, lane: Lane, epoch: Epoch, through: Seq) -> Result<usize, StoreError> {
        let straddling: Option<(i64, i64, Vec<u8>)> = self
            .tx
            .query_row(
                "SELECT seq, at, body FROM outbox WHERE lane = ?1 AND epoch = ?2 AND seq <= ?3 \
                 AND kind = 'dropped' ORDER BY seq DESC LIMIT 1",
                (lane.as_str(), epoch.to_i64(), seq_to(through)),
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let deleted = self.tx.execute(
            "DELETE FROM outbox WHERE lane = ?1 AND epoch = ?2 AND seq <= ?3",
            (lane.as_str(), epoch.to_i64(), seq_to(through)),
        )?;
        if let Some((seq, at, body)) = straddling
            && let RecordBody::Dropped(run) = decode(lane, seq, &body)?
            && run.through > through
        {
            let rest = RecordBody::Dropped(Dropped {
                through: run.through,
                reason: run.reason,
            });
            self.tx.execute(
                "INSERT INTO outbox (lane, seq, epoch, at, kind, body) \
                 VALUES (?1, ?2, ?3, ?4, 'dropped', ?5)",
                (
                    lane.as_str(),
                    seq_to(through) + 1,
                    epoch.to_i64(),
                    at,
                    encode(&rest)?,
                ),
            )?;
        }
        Ok(deleted)
    }

    /// Moves the record at `seq` of `lane` to the dead-letter table with `reason`, leaving a
    /// `Dropped` record in its place so the lane moves on. `false` if there is no such record
    /// (already acknowledged) or it is a dead letter's place-holder already.
    ///
    /// The place-holder spans up to the next record of the lane (or the lane's head): rows are
    /// contiguous, so that is exactly what the row stood for, even when the row is damaged
    /// and cannot say so itself.
    pub fn dead_letter(
        &self,
        lane: Lane,
        seq: Seq,
        reason: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let placeholder = RecordBody::Dropped(Dropped {
            through: seq,
            reason: DropReason::DeadLettered,
        });
        let moved = self.tx.execute(
            "INSERT INTO dead_letters (lane, seq, epoch, at, kind, body, reason, dead_at) \
             SELECT lane, seq, epoch, at, kind, body, ?3, ?4 FROM outbox \
             WHERE lane = ?1 AND seq = ?2 AND NOT (kind = 'dropped' AND body = ?5)",
            (
                lane.as_str(),
                seq_to(seq),
                reason,
                now.get(),
                encode(&placeholder)?,
            ),
        )?;
        if moved == 0 {
            return Ok(false);
        }
        let through: i64 = self.tx.query_row(
            "SELECT coalesce((SELECT min(seq) - 1 FROM outbox WHERE lane = ?1 AND seq > ?2), \
                             (SELECT head FROM outbox_lanes WHERE lane = ?1))",
            (lane.as_str(), seq_to(seq)),
            |r| r.get(0),
        )?;
        let dropped = RecordBody::Dropped(Dropped {
            through: seq_from(through),
            reason: DropReason::DeadLettered,
        });
        self.tx.execute(
            "UPDATE outbox SET kind = 'dropped', body = ?3 WHERE lane = ?1 AND seq = ?2",
            (lane.as_str(), seq_to(seq), encode(&dropped)?),
        )?;
        Ok(true)
    }

    pub fn command_done(&self, id: &CommandId) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .query_row(
                "SELECT 1 FROM cloud_commands WHERE id = ?1",
                [id.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records that the cloud command `id` (of `kind`) was carried out with `outcome`.
    pub fn record_command(
        &self,
        id: &CommandId,
        kind: &str,
        outcome: &CommandOutcome,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let (name, reason) = match outcome {
            CommandOutcome::Applied => ("applied", None),
            CommandOutcome::Rejected { reason } => ("rejected", Some(reason.as_str())),
        };
        self.tx.execute(
            "INSERT INTO cloud_commands (id, kind, outcome, reason, applied_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            (id.to_string(), kind, name, reason, now.get()),
        )?;
        Ok(())
    }
}

impl Reader {
    /// The oldest records of `lane`, all of the oldest epoch among them: at most
    /// `max_records`, and no more than `max_bytes` of bodies (but always at least one).
    pub fn outbox_batch(
        &self,
        lane: Lane,
        max_records: u32,
        max_bytes: usize,
    ) -> Result<Option<(Epoch, Vec<Record>)>, StoreError> {
        let records = read_records(&self.conn, lane, true, max_records, max_bytes)?;
        let Some(&(epoch, _)) = records.first() else {
            return Ok(None);
        };
        Ok(Some((epoch, records.into_iter().map(|(_, r)| r).collect())))
    }

    /// How much of each lane waits for the cloud.
    pub fn outbox_backlog(&self) -> Result<Vec<LaneBacklog>, StoreError> {
        let mut backlog = Vec::with_capacity(Lane::ALL.len());
        for &lane in Lane::ALL {
            let (records, bytes, oldest): (i64, i64, Option<i64>) = self.conn.query_row(
                "SELECT count(*), coalesce(sum(length(body)), 0), min(at) FROM outbox \
                 WHERE lane = ?1",
                [lane.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            backlog.push(LaneBacklog {
                lane,
                records: u64::try_from(records).unwrap_or(0),
                bytes: u64::try_from(bytes).unwrap_or(0),
                oldest_at: oldest.map(UnixMillis::new),
            });
        }
        Ok(backlog)
    }

    /// When the outbox last outgrew its disk budget (within the event log's reach).
    pub fn last_storage_pressure(&self) -> Result<Option<UnixMillis>, StoreError> {
        let at: Option<i64> = self
            .conn
            .query_row(
                "SELECT at FROM events WHERE topic = 'system' \
                 AND json_extract(data, '$.kind') = 'storage_pressure' ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(at.map(UnixMillis::new))
    }

    /// How many records the cloud refused and the gateway set aside.
    pub fn dead_letter_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Reads `lane`'s records in seq order, stopping after `max_records`, before `max_bytes`
/// would be passed, and with `one_epoch` at the first record of an epoch other than the
/// first record's.
fn read_records(
    conn: &rusqlite::Connection,
    lane: Lane,
    one_epoch: bool,
    max_records: u32,
    max_bytes: usize,
) -> Result<Vec<(Epoch, Record)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, epoch, at, body FROM outbox WHERE lane = ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut rows = stmt.query((lane.as_str(), i64::from(max_records)))?;
    let mut records = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let this = epoch_from(row.get(1)?)?;
        if one_epoch && records.first().is_some_and(|(first, _)| *first != this) {
            break;
        }
        let body: Vec<u8> = row.get(3)?;
        bytes = bytes.saturating_add(body.len());
        if bytes > max_bytes && !records.is_empty() {
            break;
        }
        records.push((
            this,
            Record {
                seq: seq_from(seq),
                at: UnixMillis::new(row.get(2)?),
                body: decode(lane, seq, &body)?,
            },
        ));
    }
    Ok(records)
}
