//! Merging a gateway's batch: idempotent on `(gateway, seq)`, in one transaction, one
//! set-based statement per record kind.
//!
//! The gateway's cursor row is locked first, which orders concurrent batches of one gateway
//! and lets batches of different gateways run in parallel. Records at or below the cursor were
//! merged before and are skipped without touching the database, so a replay writes nothing
//! (no dead tuples); the first new record must follow the cursor directly, otherwise the batch
//! is refused with the seq the cloud expects. Each merged change is announced with
//! `pg_notify` in the same transaction, so listeners only hear of committed data.
//!
//! - `columns`: records → one array per column, for `UNNEST`.
//! - `statements`: the merge statements, one per kind.

mod columns;
mod statements;

use shared::ids::Seq;
use shared::sync::{Command, Record};
use sqlx::PgPool;
use thiserror::Error;

use super::{DbError, Scope, begin, commands};
use crate::pki::GatewayIdentity;
use columns::Columns;

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// Stored (or already stored) through `acked_through`; `commands` are pending for the
    /// gateway.
    Acked {
        /// The gateway's cursor after the batch.
        acked_through: Seq,
        /// Records newly merged by this batch (0 for a replay).
        new_records: usize,
        /// Pending commands, oldest first.
        commands: Vec<Command>,
    },
    /// The batch starts after a gap; the gateway must resend from `expected`.
    Gap {
        /// The next seq the cloud needs.
        expected: Seq,
    },
    /// The gateway is unknown or revoked.
    NotEnrolled,
}

/// A batch whose records are not a run of consecutive sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SequenceError {
    /// A seq does not follow its predecessor by exactly one.
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
        /// Its seq.
        found: u64,
    },
}

/// Checks that `records` are consecutive and storable. Pure; runs before any database work.
pub fn check_sequence(records: &[Record]) -> Result<(), SequenceError> {
    let max = u64::try_from(i64::MAX).unwrap_or(u64::MAX);
    let mut previous: Option<u64> = None;
    for (index, record) in records.iter().enumerate() {
        let found = record.seq.get();
        if found == 0 || found > max {
            return Err(SequenceError::OutOfRange { index, found });
        }
        if let Some(prev) = previous
            && found != prev + 1
        {
            return Err(SequenceError::NotConsecutive {
                index,
                found,
                expected: prev + 1,
            });
        }
        previous = Some(found);
    }
    Ok(())
}

/// The records of a checked batch that are new, given the cursor `last`; `Err(expected)` when
/// the first new record does not follow the cursor.
pub fn new_records(records: &[Record], last: Seq) -> Result<&[Record], Seq> {
    let start = records.partition_point(|r| r.seq <= last);
    let fresh = &records[start..];
    let expected = Seq::new(last.get().saturating_add(1));
    match fresh.first() {
        Some(first) if first.seq != expected => Err(expected),
        _ => Ok(fresh),
    }
}

/// Merges a batch already checked with [`check_sequence`] and against the identity.
pub async fn merge(
    pool: &PgPool,
    gateway: &GatewayIdentity,
    records: &[Record],
    max_commands: usize,
) -> Result<Merged, DbError> {
    let school = gateway.school_id.as_str();
    let gw = gateway.gateway_id.as_str();
    let mut tx = begin(pool, Scope::School(&gateway.school_id)).await?;
    let cursor: Option<(i64, bool)> = sqlx::query_as(
        "SELECT c.last_seq, g.revoked_at IS NOT NULL FROM sync_cursors c \
         JOIN gateways g USING (school_id, gateway_id) \
         WHERE c.school_id = $1 AND c.gateway_id = $2 FOR UPDATE OF c",
    )
    .bind(school)
    .bind(gw)
    .fetch_optional(&mut *tx)
    .await?;
    let last = match cursor {
        Some((last, false)) => Seq::new(u64::try_from(last).unwrap_or(0)),
        Some((_, true)) | None => return Ok(Merged::NotEnrolled),
    };
    let fresh = match new_records(records, last) {
        Ok(fresh) => fresh,
        Err(expected) => return Ok(Merged::Gap { expected }),
    };

    let acked_through = match fresh.last() {
        Some(newest) => {
            let columns = Columns::from_records(fresh);
            statements::merge_alerts(&mut tx, school, gw, &columns.alerts).await?;
            statements::merge_health(&mut tx, school, gw, &columns.health).await?;
            statements::merge_snapshots(&mut tx, school, gw, &columns.snapshots).await?;
            statements::merge_results(&mut tx, school, gw, &columns.results).await?;
            statements::advance_cursor(&mut tx, school, gw, newest.seq).await?;
            newest.seq
        }
        None => last,
    };
    let commands = commands::deliver_pending(&mut tx, gateway, max_commands).await?;
    tx.commit().await?;
    Ok(Merged::Acked {
        acked_through,
        new_records: fresh.len(),
        commands,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::UnixMillis;
    use shared::ids::CommandId;
    use shared::sync::{CommandOutcome, CommandResult, RecordBody};

    fn records(seqs: &[u64]) -> Vec<Record> {
        seqs.iter()
            .map(|&n| Record {
                seq: Seq::new(n),
                at: UnixMillis::new(0),
                body: RecordBody::CommandResult(CommandResult {
                    command_id: CommandId::new(),
                    outcome: CommandOutcome::Applied,
                }),
            })
            .collect()
    }

    #[test]
    fn sequences_must_be_consecutive_and_in_range() {
        assert_eq!(check_sequence(&records(&[])), Ok(()));
        assert_eq!(check_sequence(&records(&[4, 5, 6])), Ok(()));
        assert_eq!(
            check_sequence(&records(&[4, 6])),
            Err(SequenceError::NotConsecutive {
                index: 1,
                found: 6,
                expected: 5
            })
        );
        assert!(check_sequence(&records(&[3, 3])).is_err());
        assert!(check_sequence(&records(&[0])).is_err());
        assert!(check_sequence(&records(&[u64::MAX])).is_err());
    }

    #[test]
    fn new_records_skips_what_the_cursor_covers_and_refuses_gaps() {
        let batch = records(&[3, 4, 5]);
        assert_eq!(new_records(&batch, Seq::new(2)).unwrap().len(), 3);
        assert_eq!(new_records(&batch, Seq::new(4)).unwrap().len(), 1);
        assert_eq!(new_records(&batch, Seq::new(5)).unwrap().len(), 0);
        assert_eq!(new_records(&batch, Seq::new(9)).unwrap().len(), 0);
        assert_eq!(new_records(&batch, Seq::new(1)), Err(Seq::new(2)));
        assert_eq!(new_records(&[], Seq::ZERO).unwrap().len(), 0);
    }
}
