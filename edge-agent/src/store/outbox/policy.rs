//! Holding the outbox to `[sync]`'s policy while the cloud is out of reach: old telemetry
//! thinned, and beyond the disk budget the oldest telemetry dropped. Whatever goes is replaced
//! by a `Dropped` record spanning its numbers, so the cloud still sees every number once.

use shared::UnixMillis;
use shared::sync::{DropReason, Dropped, Lane, RecordBody};

use rusqlite::OptionalExtension;

use super::{OutboxRow, decode, encode, epoch_from, seq_from, seq_to};
use crate::store::{Batch, StoreError, bad_value};

impl Batch<'_> {
    /// Thins `lane`'s records written before `before`: a record `keep` says yes to stays,
    /// every run of others (with any dropped runs beside them) becomes one `Dropped` record
    /// with `reason`. Returns how many records were removed.
    pub(super) fn thin(
        &self,
        lane: Lane,
        before: UnixMillis,
        reason: DropReason,
        mut keep: impl FnMut(&OutboxRow) -> bool,
    ) -> Result<u64, StoreError> {
        let rows = self.outbox_rows(lane, before)?;
        let mut removed = 0u64;
        let mut run: Vec<&OutboxRow> = Vec::new();
        for row in &rows {
            let follows = run.last().is_some_and(|last| {
                last.epoch == row.epoch && last.through.get() + 1 == row.seq.get()
            });
            if !follows {
                removed += self.replace_run(lane, &run, reason)?;
                run.clear();
            }
            if row.dropped || !keep(row) {
                run.push(row);
            } else {
                removed += self.replace_run(lane, &run, reason)?;
                run.clear();
            }
        }
        removed += self.replace_run(lane, &run, reason)?;
        Ok(removed)
    }

    /// Replaces `run` (consecutive rows of one epoch) with one `Dropped` record spanning it,
    /// unless it is a single dropped run already. Returns the data records removed.
    fn replace_run(
        &self,
        lane: Lane,
        run: &[&OutboxRow],
        reason: DropReason,
    ) -> Result<u64, StoreError> {
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return Ok(0);
        };
        if run.len() == 1 && first.dropped {
            return Ok(0);
        }
        self.tx.execute(
            "DELETE FROM outbox WHERE lane = ?1 AND seq BETWEEN ?2 AND ?3",
            (lane.as_str(), seq_to(first.seq), seq_to(last.seq)),
        )?;
        let body = RecordBody::Dropped(Dropped {
            through: last.through,
            reason,
        });
        self.tx.execute(
            "INSERT INTO outbox (lane, seq, epoch, at, kind, body) \
             VALUES (?1, ?2, ?3, ?4, 'dropped', ?5)",
            (
                lane.as_str(),
                seq_to(first.seq),
                first.epoch.to_i64(),
                first.at.get(),
                encode(&body)?,
            ),
        )?;
        Ok(run.iter().filter(|r| !r.dropped).count() as u64)
    }

    /// `lane`'s rows written before `before`, in seq order, without their bodies (but with a
    /// dropped run's extent).
    fn outbox_rows(&self, lane: Lane, before: UnixMillis) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT seq, epoch, at, kind, CASE kind WHEN 'dropped' THEN body END FROM outbox \
             WHERE lane = ?1 AND at < ?2 ORDER BY seq",
        )?;
        let mut rows = stmt.query((lane.as_str(), before.get()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let kind: String = row.get(3)?;
            let dropped: Option<Vec<u8>> = row.get(4)?;
            let through = match dropped {
                Some(bytes) => match decode(lane, seq, &bytes)? {
                    RecordBody::Dropped(d) => d.through,
                    _ => return Err(bad_value("dropped run", &seq.to_string())),
                },
                None => seq_from(seq),
            };
            out.push(OutboxRow {
                seq: seq_from(seq),
                through,
                epoch: epoch_from(row.get(1)?)?,
                at: UnixMillis::new(row.get(2)?),
                snapshot: kind == "snapshot",
                dropped: kind == "dropped",
            });
        }
        Ok(out)
    }

    /// Thins telemetry written before `before`: device health records stay (each is a
    /// change), and of the snapshots the first of every `keep_every` window stays.
    pub fn thin_telemetry(
        &self,
        before: UnixMillis,
        keep_every: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let window = i64::try_from(keep_every.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let mut last_kept: Option<i64> = None;
        self.thin(Lane::Telemetry, before, DropReason::Thinned, |row| {
            if !row.snapshot {
                return true;
            }
            let bucket = row.at.get().div_euclid(window);
            let keep = last_kept != Some(bucket);
            if keep {
                last_kept = Some(bucket);
            }
            keep
        })
    }

    /// The outbox's size: records and bytes of bodies, all lanes.
    pub fn outbox_size(&self) -> Result<(u64, u64), StoreError> {
        let (rows, bytes): (i64, i64) = self.tx.query_row(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((
            u64::try_from(rows).unwrap_or(0),
            u64::try_from(bytes).unwrap_or(0),
        ))
    }

    /// Drops the oldest telemetry records until at least `bytes` of bodies are gone (or none
    /// is left). Returns how many records were removed.
    pub fn drop_oldest_telemetry(&self, bytes: u64) -> Result<u64, StoreError> {
        // The newest record whose removal, with all older ones, frees enough.
        let cutoff: Option<i64> = self
            .tx
            .query_row(
                "SELECT seq FROM (SELECT seq, sum(length(body)) OVER (ORDER BY seq) AS freed \
                 FROM outbox WHERE lane = 'telemetry' AND kind <> 'dropped') \
                 WHERE freed >= ?1 ORDER BY seq LIMIT 1",
                [i64::try_from(bytes).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .optional()?;
        let through = match cutoff {
            Some(seq) => seq,
            None => self.tx.query_row(
                "SELECT coalesce(max(seq), 0) FROM outbox WHERE lane = 'telemetry'",
                [],
                |r| r.get(0),
            )?,
        };
        self.thin(
            Lane::Telemetry,
            UnixMillis::new(i64::MAX),
            DropReason::StorageBudget,
            |row| row.seq.get() > u64::try_from(through).unwrap_or(0),
        )
    }
}
