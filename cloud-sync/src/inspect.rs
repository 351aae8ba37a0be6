//! Summarising a sync body for people: support saves a gateway's request body to a file and
//! sees who sent it, which records it holds, or exactly why the cloud refuses it.

use std::collections::BTreeMap;
use std::fmt::Write;

use shared::sync::{Limits, RecordBody, SyncError, decode_batch};

/// Decodes `bytes` as a sync batch under the default limits and describes it.
pub fn describe_batch(bytes: &[u8]) -> Result<String, SyncError> {
    let batch = decode_batch(bytes, &Limits::DEFAULT)?;
    let mut out = String::new();
    let _ = writeln!(out, "{} bytes on the wire", bytes.len());
    let _ = writeln!(
        out,
        "gateway {} of school {}",
        batch.gateway_id, batch.school_id
    );
    let _ = write!(out, "{} records", batch.records.len());
    if let (Some(first), Some(last)) = (batch.records.first(), batch.records.last()) {
        let _ = write!(out, ", seq {}..={}", first.seq.get(), last.seq.get());
        let _ = write!(out, ", at {}..={} (unix ms)", first.at.get(), last.at.get());
    }
    out.push('\n');
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &batch.records {
        *kinds.entry(kind_name(&record.body)).or_default() += 1;
    }
    for (kind, count) in kinds {
        let _ = writeln!(out, "  {kind:<16} {count}");
    }
    Ok(out)
}

fn kind_name(body: &RecordBody) -> &'static str {
    match body {
        RecordBody::AlertEvent(_) => "alert events",
        RecordBody::DeviceHealth(_) => "device health",
        RecordBody::Snapshot(_) => "snapshots",
        RecordBody::CommandResult(_) => "command results",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ids::{SchoolId, Seq};
    use shared::sync::{Record, SyncBatch, encode_batch};
    use shared::{SchoolSnapshot, SnapshotCounts, UnixMillis};

    #[test]
    fn describes_a_batch() {
        let school: SchoolId = "lincoln-high".parse().unwrap();
        let records = (1..=3)
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
        let batch = SyncBatch {
            gateway_id: "gw-1".parse().unwrap(),
            school_id: school,
            records,
        };
        let text = describe_batch(&encode_batch(&batch).unwrap()).unwrap();
        assert!(
            text.contains("gateway gw-1 of school lincoln-high"),
            "{text}"
        );
        assert!(text.contains("3 records, seq 1..=3"), "{text}");
        assert!(text.contains("snapshots        3"), "{text}");
    }

    #[test]
    fn refuses_with_the_decoder_reason() {
        let err = describe_batch(&[9, 0, 1, 2, 3]).unwrap_err();
        assert_eq!(
            err,
            SyncError::UnsupportedVersion {
                found: 9,
                expected: 1
            }
        );
    }
}
