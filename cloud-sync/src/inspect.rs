//! Summarising a sync body for people: support saves a gateway's request body to a file and
//! sees who sent it, which records it holds, or exactly why the cloud refuses it.

use std::collections::BTreeMap;
use std::fmt::Write;

use shared::sync::{Dropped, Limits, RecordBody, SyncError, decode_batch};

/// Decodes `bytes` as a sync batch under the default limits and describes it.
pub fn describe_batch(bytes: &[u8]) -> Result<String, SyncError> {
    let batch = decode_batch(bytes, &Limits::DEFAULT)?;
    let mut out = String::new();
    let _ = writeln!(out, "{} bytes on the wire", bytes.len());
    let _ = writeln!(
        out,
        "gateway {} of school {}, epoch {}, {} lane",
        batch.gateway_id, batch.school_id, batch.epoch, batch.lane
    );
    if batch.records.is_empty() {
        out.push_str("no records (a heartbeat)\n");
        return Ok(out);
    }
    let _ = write!(out, "{} records", batch.records.len());
    if let (Some(first), Some(last)) = (batch.records.first(), batch.records.last()) {
        let end = match &last.body {
            RecordBody::Dropped(Dropped { through, .. }) => through.get(),
            _ => last.seq.get(),
        };
        let _ = write!(out, ", seq {}..={end}", first.seq.get());
        let _ = write!(out, ", at {}..={} (unix ms)", first.at.get(), last.at.get());
    }
    out.push('\n');
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for record in &batch.records {
        let (kind, n) = match &record.body {
            RecordBody::AlertEvent(_) => ("alert events".to_owned(), 1),
            RecordBody::DeviceHealth(_) => ("device health".to_owned(), 1),
            RecordBody::Snapshot(_) => ("snapshots".to_owned(), 1),
            RecordBody::CommandResult(_) => ("command results".to_owned(), 1),
            RecordBody::Dropped(Dropped { through, reason }) => (
                format!("dropped ({reason})"),
                usize::try_from(through.get().saturating_sub(record.seq.get()) + 1)
                    .unwrap_or(usize::MAX),
            ),
        };
        let count = kinds.entry(kind).or_default();
        *count = count.saturating_add(n);
    }
    for (kind, count) in kinds {
        let _ = writeln!(out, "  {kind:<16} {count}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ids::{Epoch, SchoolId, Seq};
    use shared::sync::{DropReason, Lane, Record, SYNC_FORMAT_VERSION, SyncBatch, encode_batch};
    use shared::{SchoolSnapshot, SnapshotCounts, UnixMillis};

    #[test]
    fn describes_a_batch() {
        let school: SchoolId = "lincoln-high".parse().unwrap();
        let mut records: Vec<Record> = (1..=3)
            .map(|n| Record {
                seq: Seq::new(n),
                at: UnixMillis::new(1_700_000_000_000 + i64::try_from(n).unwrap()),
                body: RecordBody::Snapshot(SchoolSnapshot::new(
                    school.clone(),
                    UnixMillis::new(1_700_000_000_000),
                    SnapshotCounts::default(),
                )),
            })
            .collect();
        records.push(Record {
            seq: Seq::new(4),
            at: UnixMillis::new(1_700_000_000_004),
            body: RecordBody::Dropped(Dropped {
                through: Seq::new(10),
                reason: DropReason::Thinned,
            }),
        });
        let batch = SyncBatch {
            gateway_id: "gw-1".parse().unwrap(),
            school_id: school,
            epoch: Epoch::new(255).unwrap(),
            lane: Lane::Telemetry,
            records,
        };
        let text = describe_batch(&encode_batch(&batch).unwrap()).unwrap();
        assert!(
            text.contains(
                "gateway gw-1 of school lincoln-high, epoch 00000000000000ff, telemetry lane"
            ),
            "{text}"
        );
        assert!(text.contains("4 records, seq 1..=10"), "{text}");
        assert!(text.contains("snapshots        3"), "{text}");
        assert!(text.contains("dropped (thinned) 7"), "{text}");
    }

    #[test]
    fn describes_a_heartbeat() {
        let batch = SyncBatch {
            gateway_id: "gw-1".parse().unwrap(),
            school_id: "lincoln-high".parse().unwrap(),
            epoch: Epoch::new(1).unwrap(),
            lane: Lane::Alert,
            records: Vec::new(),
        };
        let text = describe_batch(&encode_batch(&batch).unwrap()).unwrap();
        assert!(text.contains("alert lane"), "{text}");
        assert!(text.contains("no records (a heartbeat)"), "{text}");
    }

    #[test]
    fn refuses_with_the_decoder_reason() {
        let err = describe_batch(&[9, 0, 1, 2, 3]).unwrap_err();
        assert_eq!(
            err,
            SyncError::UnsupportedVersion {
                found: 9,
                expected: SYNC_FORMAT_VERSION
            }
        );
    }
}
