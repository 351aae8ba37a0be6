//! Merging a gateway's batch: one lane of one epoch, idempotent on `(gateway, epoch, lane,
//! seq)`, in one transaction, one set-based statement per record kind.
//!
//! The cursor row of the batch's `(epoch, lane)` is locked first (created on first sight,
//! just before the batch's first record: the cloud trusts an authenticated gateway on where
//! an epoch starts). That orders concurrent batches of one lane, while the other lane and
//! other gateways run in parallel. Records at or below the cursor were merged before and are
//! skipped without touching the database, so a replay writes nothing (no dead tuples); the
//! first new record must cover the seq after the cursor, otherwise the batch is refused with
//! the seq the cloud expects. A [`Dropped`] record stands for its whole range: it moves the
//! cursor past it and is counted, by reason, on the cursor. Each merged change is announced
//! with `pg_notify` in the same transaction, so listeners only hear of committed data.
//!
//! An empty batch is a heartbeat: it reads the cursor (0 for an epoch and lane never seen,
//! which it does not create, since the first record decides where the cursor opens) and
//! collects the pending commands.
//!
//! Every batch that reaches the merge, heartbeat, replay or gap, is also proof that the
//! gateway is alive: the transaction ends by telling `db::liveness`, which writes only when
//! the gateway was offline or its `last_sync_at` is due.
//!
//! - `columns`: records → one array per column, for `UNNEST`, and the dropped counts.
//! - `statements`: the merge statements, one per kind, and the cursor's.

mod columns;
mod statements;

use shared::ids::Seq;
use shared::sync::{Command, DropReason, Dropped, Lane, Record, RecordBody, SyncBatch};
use sqlx::{PgConnection, PgPool};
use thiserror::Error;

use super::liveness::{self, LastSeen};
use super::{DbError, Scope, begin, commands};
use crate::config::Liveness;
use crate::pki::GatewayIdentity;
use columns::Columns;
use statements::Source;

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// Stored (or already stored) through `acked_through`; `commands` are pending for the
    /// gateway.
    Acked {
        /// The cursor of the batch's epoch and lane after the batch.
        acked_through: Seq,
        /// Records newly merged by this batch (0 for a replay), a dropped run counting one.
        new_records: usize,
        /// Pending commands, oldest first.
        commands: Vec<Command>,
    },
    /// The batch starts after a gap; the gateway must resend from `expected`.
    Gap {
        /// The next seq the cloud needs in this epoch and lane.
        expected: Seq,
    },
    /// The gateway is unknown or revoked.
    NotEnrolled,
}

/// A batch that is malformed whatever the cloud holds: refused before any database work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    /// A seq does not follow its predecessor (or the end of its dropped run) by exactly one.
    #[error("record {index} has seq {found}, expected {expected} (records must be consecutive)")]
    NotConsecutive {
        /// Position in the batch.
        index: usize,
        /// Its seq.
        found: u64,
        /// The seq it should have had.
        expected: u64,
    },
    /// A seq of zero, or one beyond the range the cloud stores.
    #[error("record {index} has seq {found}, outside 1..=2^63-1")]
    OutOfRange {
        /// Position in the batch.
        index: usize,
        /// The offending seq (a dropped run's `through`, possibly).
        found: u64,
    },
    /// A dropped run that ends before it starts.
    #[error("record {index} drops seqs {seq}..={through}, an empty range")]
    EmptyDrop {
        /// Position in the batch.
        index: usize,
        /// Its seq.
        seq: u64,
        /// The end it declared.
        through: u64,
    },
    /// A record of a kind that travels in the other lane.
    #[error("record {index} is of the {kind_lane} lane, in a batch of the {lane} lane")]
    WrongLane {
        /// Position in the batch.
        index: usize,
        /// The lane of the record's kind.
        kind_lane: Lane,
        /// The batch's lane.
        lane: Lane,
    },
    /// Alert records dropped for a reason other than dead-lettering.
    #[error(
        "record {index} drops alert records as {reason}; alert records are never thinned or evicted, only dead-lettered"
    )]
    AlertsNotDroppable {
        /// Position in the batch.
        index: usize,
        /// The reason given.
        reason: DropReason,
    },
}

impl BatchError {
    /// The machine-readable code the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConsecutive { .. } | Self::OutOfRange { .. } | Self::EmptyDrop { .. } => {
                "bad_sequence"
            }
            Self::WrongLane { .. } => "wrong_lane",
            Self::AlertsNotDroppable { .. } => "alerts_not_droppable",
        }
    }
}

/// The last seq a record accounts for: its own, or the end of its dropped run.
pub fn end(record: &Record) -> Seq {
    match &record.body {
        RecordBody::Dropped(Dropped { through, .. }) => *through,
        _ => record.seq,
    }
}

/// Checks that `records` belong in `lane` and form a run of consecutive, storable seqs (a
/// dropped run followed by the seq after its end). Pure; runs before any database work.
pub fn check_batch(lane: Lane, records: &[Record]) -> Result<(), BatchError> {
    let max = u64::try_from(i64::MAX).unwrap_or(u64::MAX);
    let mut previous: Option<u64> = None;
    for (index, record) in records.iter().enumerate() {
        let found = record.seq.get();
        if found == 0 || found > max {
            return Err(BatchError::OutOfRange { index, found });
        }
        if let Some(prev) = previous
            && found != prev + 1
        {
            return Err(BatchError::NotConsecutive {
                index,
                found,
                expected: prev + 1,
            });
        }
        match &record.body {
            RecordBody::Dropped(Dropped { through, reason }) => {
                let through = through.get();
                if through > max {
                    return Err(BatchError::OutOfRange {
                        index,
                        found: through,
                    });
                }
                if through < found {
                    return Err(BatchError::EmptyDrop {
                        index,
                        seq: found,
                        through,
                    });
                }
                if lane == Lane::Alert && *reason != DropReason::DeadLettered {
                    return Err(BatchError::AlertsNotDroppable {
                        index,
                        reason: *reason,
                    });
                }
            }
            body => {
                if let Some(kind_lane) = body.lane()
                    && kind_lane != lane
                {
                    return Err(BatchError::WrongLane {
                        index,
                        kind_lane,
                        lane,
                    });
                }
            }
        }
        previous = Some(end(record).get());
    }
    Ok(())
}

/// The records of a checked batch that are new, given the cursor `last`; `Err(expected)` when
/// the first new record does not cover the seq after the cursor. A dropped run that straddles
/// the cursor is new (its part after the cursor is).
pub fn new_records(records: &[Record], last: Seq) -> Result<&[Record], Seq> {
    let start = records.partition_point(|r| end(r) <= last);
    let fresh = &records[start..];
    let expected = Seq::new(last.get().saturating_add(1));
    match fresh.first() {
        Some(first) if first.seq > expected => Err(expected),
        _ => Ok(fresh),
    }
}

/// Merges a batch already checked with [`check_batch`] and against the identity, and records
/// that the gateway was heard from.
pub async fn merge(
    pool: &PgPool,
    gateway: &GatewayIdentity,
    batch: &SyncBatch,
    max_commands: usize,
    liveness: &Liveness,
) -> Result<Merged, DbError> {
    let mut tx = begin(pool, Scope::School(&gateway.school_id)).await?;
    let source = Source {
        school: gateway.school_id.as_str(),
        gateway: gateway.gateway_id.as_str(),
        epoch: batch.epoch.to_i64(),
        lane: batch.lane,
    };
    let Some(first) = batch.records.first() else {
        let Some((last, seen)) = peek_cursor(&mut tx, &source, liveness).await? else {
            return Ok(Merged::NotEnrolled);
        };
        liveness::heard_from(&mut tx, gateway, seen, liveness).await?;
        let commands = commands::deliver_pending(&mut tx, gateway, max_commands).await?;
        tx.commit().await?;
        return Ok(Merged::Acked {
            acked_through: last,
            new_records: 0,
            commands,
        });
    };
    // Opened just before the first record, if this epoch and lane are new.
    let open_at = Seq::new(first.seq.get().saturating_sub(1));
    let Some((last, seen)) = lock_cursor(&mut tx, &source, open_at, liveness).await? else {
        return Ok(Merged::NotEnrolled);
    };
    let fresh = match new_records(&batch.records, last) {
        Ok(fresh) => fresh,
        Err(expected) => {
            // A gateway out of step is still alive.
            liveness::heard_from(&mut tx, gateway, seen, liveness).await?;
            tx.commit().await?;
            return Ok(Merged::Gap { expected });
        }
    };

    let acked_through = match fresh.last() {
        Some(newest) => {
            let columns = Columns::from_records(fresh, last);
            statements::merge_alerts(&mut tx, &source, &columns.alerts).await?;
            statements::merge_health(&mut tx, &source, &columns.health).await?;
            statements::merge_snapshots(&mut tx, &source, &columns.snapshots).await?;
            statements::merge_results(&mut tx, &source, &columns.results).await?;
            statements::advance_cursor(&mut tx, &source, end(newest), &columns.dropped).await?;
            end(newest)
        }
        None => last,
    };
    liveness::heard_from(&mut tx, gateway, seen, liveness).await?;
    let commands = commands::deliver_pending(&mut tx, gateway, max_commands).await?;
    tx.commit().await?;
    Ok(Merged::Acked {
        acked_through,
        new_records: fresh.len(),
        commands,
    })
}

/// A cursor row as read with its gateway: `(last_seq, revoked, offline, liveness due)`.
type CursorRow = (i64, bool, bool, bool);

/// The cursor of the batch's epoch and lane, locked until the transaction ends, and what the
/// gateway row says of its liveness; created at `open_at` if missing. `None` when the gateway
/// is unknown or revoked.
async fn lock_cursor(
    conn: &mut PgConnection,
    source: &Source<'_>,
    open_at: Seq,
    liveness: &Liveness,
) -> Result<Option<(Seq, LastSeen)>, sqlx::Error> {
    let select = || {
        sqlx::query_as::<_, CursorRow>(
            "SELECT c.last_seq, g.revoked_at IS NOT NULL, g.offline_since IS NOT NULL, \
               g.last_sync_at IS NULL OR g.last_sync_at < now() - make_interval(secs => $5) \
             FROM sync_cursors c JOIN gateways g USING (school_id, gateway_id) \
             WHERE c.school_id = $1 AND c.gateway_id = $2 AND c.epoch = $3 AND c.lane = $4 \
             FOR UPDATE OF c",
        )
        .bind(source.school)
        .bind(source.gateway)
        .bind(source.epoch)
        .bind(source.lane.as_str())
        .bind(liveness.record_every.as_secs_f64())
    };
    // The usual case, a cursor that exists, takes one statement. Otherwise insert it (our
    // uncommitted row is locked by being ours), or, if another batch of the same lane
    // inserted it first, wait for that one and lock the row it committed.
    let mut row = select().fetch_optional(&mut *conn).await?;
    if row.is_none() {
        row = sqlx::query_as::<_, CursorRow>(
            "WITH opened AS ( \
               INSERT INTO sync_cursors (school_id, gateway_id, epoch, lane, last_seq) \
               SELECT school_id, gateway_id, $3, $4, $5 FROM gateways \
               WHERE school_id = $1 AND gateway_id = $2 AND revoked_at IS NULL \
               ON CONFLICT DO NOTHING RETURNING last_seq) \
             SELECT o.last_seq, false, g.offline_since IS NOT NULL, \
               g.last_sync_at IS NULL OR g.last_sync_at < now() - make_interval(secs => $6) \
             FROM opened o, gateways g WHERE g.school_id = $1 AND g.gateway_id = $2",
        )
        .bind(source.school)
        .bind(source.gateway)
        .bind(source.epoch)
        .bind(source.lane.as_str())
        .bind(to_i64(open_at))
        .bind(liveness.record_every.as_secs_f64())
        .fetch_optional(&mut *conn)
        .await?;
    }
    if row.is_none() {
        row = select().fetch_optional(&mut *conn).await?;
    }
    Ok(match row {
        Some((last, false, offline, due)) => Some((from_i64(last), LastSeen { offline, due })),
        Some((_, true, ..)) | None => None,
    })
}

/// The cursor of the batch's epoch and lane without a lock (0 if there is none), for a
/// heartbeat. `None` when the gateway is unknown or revoked.
async fn peek_cursor(
    conn: &mut PgConnection,
    source: &Source<'_>,
    liveness: &Liveness,
) -> Result<Option<(Seq, LastSeen)>, sqlx::Error> {
    let row: Option<(Option<i64>, bool, bool)> = sqlx::query_as(
        "SELECT (SELECT c.last_seq FROM sync_cursors c WHERE c.school_id = g.school_id \
             AND c.gateway_id = g.gateway_id AND c.epoch = $3 AND c.lane = $4), \
           g.offline_since IS NOT NULL, \
           g.last_sync_at IS NULL OR g.last_sync_at < now() - make_interval(secs => $5) \
         FROM gateways g \
         WHERE g.school_id = $1 AND g.gateway_id = $2 AND g.revoked_at IS NULL",
    )
    .bind(source.school)
    .bind(source.gateway)
    .bind(source.epoch)
    .bind(source.lane.as_str())
    .bind(liveness.record_every.as_secs_f64())
    .fetch_optional(conn)
    .await?;
    Ok(row
        .map(|(last, offline, due)| (last.map_or(Seq::ZERO, from_i64), LastSeen { offline, due })))
}

/// Seqs were checked to fit `bigint` before.
fn to_i64(seq: Seq) -> i64 {
    i64::try_from(seq.get()).unwrap_or(i64::MAX)
}

/// Stored seqs are never negative (a CHECK says so).
fn from_i64(n: i64) -> Seq {
    Seq::new(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests;
