//! Unit tests of the batch checks that run before any database work.

use super::*;
use shared::UnixMillis;
use shared::ids::{CommandId, DeviceId};
use shared::sync::{CommandOutcome, CommandResult, DeviceHealthRecord, DeviceStatus};

fn result(n: u64) -> Record {
    Record {
        seq: Seq::new(n),
        at: UnixMillis::new(0),
        body: RecordBody::CommandResult(CommandResult {
            command_id: CommandId::new(),
            outcome: CommandOutcome::Applied,
        }),
    }
}

fn records(seqs: &[u64]) -> Vec<Record> {
    seqs.iter().map(|&n| result(n)).collect()
}

fn dropped(seq: u64, through: u64, reason: DropReason) -> Record {
    Record {
        seq: Seq::new(seq),
        at: UnixMillis::new(0),
        body: RecordBody::Dropped(Dropped {
            through: Seq::new(through),
            reason,
        }),
    }
}

fn health(seq: u64) -> Record {
    let device: DeviceId = "btn-1".parse().unwrap();
    Record {
        seq: Seq::new(seq),
        at: UnixMillis::new(0),
        body: RecordBody::DeviceHealth(DeviceHealthRecord {
            device_id: device,
            status: DeviceStatus::Online,
            battery_mv: None,
            rssi_dbm: None,
        }),
    }
}

#[test]
fn sequences_must_be_consecutive_and_in_range() {
    let check = |seqs: &[u64]| check_batch(Lane::Alert, &records(seqs));
    assert_eq!(check(&[]), Ok(()));
    assert_eq!(check(&[4, 5, 6]), Ok(()));
    assert_eq!(
        check(&[4, 6]),
        Err(BatchError::NotConsecutive {
            index: 1,
            found: 6,
            expected: 5
        })
    );
    assert!(check(&[3, 3]).is_err());
    assert!(check(&[0]).is_err());
    assert!(check(&[u64::MAX]).is_err());
}

#[test]
fn a_dropped_run_spans_its_range() {
    let dead = DropReason::DeadLettered;
    let batch = vec![result(4), dropped(5, 9, dead), result(10)];
    assert_eq!(check_batch(Lane::Alert, &batch), Ok(()));
    let batch = vec![dropped(5, 9, dead), result(6)];
    assert_eq!(
        check_batch(Lane::Alert, &batch),
        Err(BatchError::NotConsecutive {
            index: 1,
            found: 6,
            expected: 10
        })
    );
    let batch = vec![dropped(5, 4, dead)];
    assert_eq!(
        check_batch(Lane::Alert, &batch).map_err(|e| e.code()),
        Err("bad_sequence")
    );
    let batch = vec![dropped(5, u64::MAX, dead)];
    assert!(matches!(
        check_batch(Lane::Alert, &batch),
        Err(BatchError::OutOfRange { index: 0, .. })
    ));
    // A run of one record is fine.
    assert_eq!(check_batch(Lane::Alert, &[dropped(5, 5, dead)]), Ok(()));
}

#[test]
fn records_stay_in_their_lane_and_alerts_are_only_dead_lettered() {
    assert_eq!(
        check_batch(Lane::Telemetry, &[health(1), result(2)]),
        Err(BatchError::WrongLane {
            index: 1,
            kind_lane: Lane::Alert,
            lane: Lane::Telemetry
        })
    );
    assert_eq!(
        check_batch(Lane::Alert, &[health(1)]).map_err(|e| e.code()),
        Err("wrong_lane")
    );
    for reason in [DropReason::Thinned, DropReason::StorageBudget] {
        assert_eq!(
            check_batch(Lane::Alert, &[dropped(1, 3, reason)]),
            Err(BatchError::AlertsNotDroppable { index: 0, reason })
        );
        assert_eq!(
            check_batch(Lane::Telemetry, &[dropped(1, 3, reason), health(4)]),
            Ok(())
        );
    }
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

#[test]
fn a_dropped_run_straddling_the_cursor_is_new() {
    let batch = vec![
        result(3),
        dropped(4, 8, DropReason::DeadLettered),
        result(9),
    ];
    assert_eq!(new_records(&batch, Seq::new(3)).unwrap().len(), 2);
    assert_eq!(new_records(&batch, Seq::new(6)).unwrap().len(), 2);
    assert_eq!(new_records(&batch, Seq::new(8)).unwrap().len(), 1);
    assert_eq!(new_records(&batch, Seq::new(1)), Err(Seq::new(2)));
}
