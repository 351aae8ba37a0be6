//! The outbox's rules on a real database: thinning, the disk budget, acknowledgements inside
//! dropped runs, dead letters and damaged rows.

use shared::sync::{DeviceHealthRecord, DeviceStatus};
use shared::{SchoolSnapshot, SnapshotCounts};

use super::*;

const MINUTE: i64 = 60_000;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let school = "lincoln-high".parse().unwrap();
    let mut store = Store::create(
        &dir.path().join(crate::layout::DB_FILE),
        &school,
        UnixMillis::new(0),
    )
    .unwrap();
    store.start_epoch(UnixMillis::new(0)).unwrap();
    (dir, store)
}

fn snapshot(minute: i64) -> (UnixMillis, RecordBody) {
    let at = UnixMillis::new(minute * MINUTE);
    let counts = SnapshotCounts {
        students_total: 10,
        students_present: 9,
        teachers_present: 1,
        active_alerts: 0,
        devices_online: 2,
        devices_offline: 0,
    };
    let school = "lincoln-high".parse().unwrap();
    (
        at,
        RecordBody::Snapshot(SchoolSnapshot::new(school, at, counts)),
    )
}

fn health(minute: i64) -> (UnixMillis, RecordBody) {
    let body = RecordBody::DeviceHealth(DeviceHealthRecord {
        device_id: "btn-1".parse().unwrap(),
        status: DeviceStatus::Offline,
        battery_mv: None,
        rssi_dbm: None,
    });
    (UnixMillis::new(minute * MINUTE), body)
}

/// What the telemetry lane holds: `(seq, "s"|"h"|"d..through")`.
fn lane(store: &Store) -> Vec<(u64, String)> {
    store
        .outbox(Lane::Telemetry)
        .unwrap()
        .into_iter()
        .map(|(_, r)| {
            let what = match r.body {
                RecordBody::Snapshot(_) => "s".to_owned(),
                RecordBody::DeviceHealth(_) => "h".to_owned(),
                RecordBody::Dropped(d) => format!("d..{}", d.through),
                _ => "?".to_owned(),
            };
            (r.seq.get(), what)
        })
        .collect()
}

#[test]
fn thinning_keeps_health_and_one_snapshot_per_window_and_spans_the_rest() {
    let (_dir, mut store) = store();
    let tx = store.batch().unwrap();
    // Snapshots every minute for 12 minutes, a health change at minute 7.
    for minute in 0..12 {
        let (at, body) = snapshot(minute);
        tx.append_outbox(at, &body).unwrap();
        if minute == 7 {
            let (at, body) = health(minute);
            tx.append_outbox(at, &body).unwrap();
        }
    }
    // Older than minute 11, one snapshot per 5 minutes.
    let removed = tx
        .thin_telemetry(
            UnixMillis::new(11 * MINUTE),
            std::time::Duration::from_secs(300),
        )
        .unwrap();
    tx.commit().unwrap();
    // seq: minute 0..7 are 1..8, the health 9, minutes 8..11 are 10..13.
    assert_eq!(
        lane(&store),
        [
            (1, "s".to_owned()),
            (2, "d..5".to_owned()),
            (6, "s".to_owned()),
            (7, "d..8".to_owned()),
            (9, "h".to_owned()),
            (10, "d..11".to_owned()),
            // Minute 10 opens the third window; minute 11 is not old enough.
            (12, "s".to_owned()),
            (13, "s".to_owned()),
        ]
    );
    assert_eq!(removed, 4 + 2 + 2);

    // Thinning again changes nothing; a later pass merges new runs into the old.
    let tx = store.batch().unwrap();
    assert_eq!(
        tx.thin_telemetry(
            UnixMillis::new(11 * MINUTE),
            std::time::Duration::from_secs(300)
        )
        .unwrap(),
        0
    );
    tx.commit().unwrap();
    assert_eq!(lane(&store).len(), 8);
}

#[test]
fn the_budget_drops_the_oldest_telemetry_and_never_alerts() {
    let (_dir, mut store) = store();
    let tx = store.batch().unwrap();
    for minute in 0..10 {
        let (at, body) = snapshot(minute);
        tx.append_outbox(at, &body).unwrap();
    }
    let (_, one) = tx.outbox_size().unwrap();
    let per_record = one / 10;
    let removed = tx.drop_oldest_telemetry(per_record * 3).unwrap();
    tx.commit().unwrap();
    assert_eq!(removed, 3);
    assert_eq!(lane(&store)[0], (1, "d..3".to_owned()));
    assert_eq!(lane(&store)[1], (4, "s".to_owned()));
    assert!(store.outbox(Lane::Alert).unwrap().is_empty());
}

#[test]
fn an_ack_in_the_middle_of_a_dropped_run_keeps_its_remainder() {
    let (_dir, mut store) = store();
    let epoch = store.epoch().unwrap();
    let tx = store.batch().unwrap();
    for minute in 0..10 {
        let (at, body) = snapshot(minute);
        tx.append_outbox(at, &body).unwrap();
    }
    // Records 1..=5 went out; meanwhile 3..=8 were dropped for the budget.
    tx.thin(
        Lane::Telemetry,
        UnixMillis::new(i64::MAX),
        DropReason::StorageBudget,
        |row| !(3..=8).contains(&row.seq.get()),
    )
    .unwrap();
    tx.ack_outbox(Lane::Telemetry, epoch, Seq::new(5)).unwrap();
    tx.commit().unwrap();
    assert_eq!(
        lane(&store),
        [
            (6, "d..8".to_owned()),
            (9, "s".to_owned()),
            (10, "s".to_owned())
        ]
    );
}

#[test]
fn a_dead_letter_leaves_a_dropped_record_in_its_place() {
    let (_dir, mut store) = store();
    let tx = store.batch().unwrap();
    for minute in 0..3 {
        let (at, body) = snapshot(minute);
        tx.append_outbox(at, &body).unwrap();
    }
    assert!(
        tx.dead_letter(Lane::Telemetry, Seq::new(2), "bad", UnixMillis::new(1))
            .unwrap()
    );
    assert!(
        !tx.dead_letter(Lane::Telemetry, Seq::new(2), "again", UnixMillis::new(1))
            .unwrap()
    );
    tx.commit().unwrap();
    assert_eq!(
        lane(&store),
        [
            (1, "s".to_owned()),
            (2, "d..2".to_owned()),
            (3, "s".to_owned())
        ]
    );
}

#[test]
fn a_damaged_row_is_read_as_an_error_naming_it_and_its_place_holder_spans_its_run() {
    let (_dir, mut store) = store();
    let tx = store.batch().unwrap();
    for minute in 0..8 {
        let (at, body) = snapshot(minute);
        tx.append_outbox(at, &body).unwrap();
    }
    // 2..=5 thinned into one run, then that row and the lane's last row damaged.
    tx.thin(
        Lane::Telemetry,
        UnixMillis::new(i64::MAX),
        DropReason::Thinned,
        |row| !(2..=5).contains(&row.seq.get()),
    )
    .unwrap();
    tx.tx
        .execute(
            "UPDATE outbox SET body = x'ff' WHERE seq IN (2, 8) AND lane = 'telemetry'",
            [],
        )
        .unwrap();
    tx.commit().unwrap();
    let reader = Reader::open(&_dir.path().join(crate::layout::DB_FILE)).unwrap();
    match reader.outbox_batch(Lane::Telemetry, 100, usize::MAX) {
        Err(StoreError::UnreadableRecord { seq, .. }) => assert_eq!(seq, Seq::new(2)),
        other => panic!("expected the damaged row to be named: {other:?}"),
    }
    let tx = store.batch().unwrap();
    for seq in [2, 8] {
        assert!(
            tx.dead_letter(
                Lane::Telemetry,
                Seq::new(seq),
                "damaged",
                UnixMillis::new(1)
            )
            .unwrap()
        );
    }
    tx.commit().unwrap();
    assert_eq!(
        lane(&store),
        [
            (1, "s".to_owned()),
            (2, "d..5".to_owned()),
            (6, "s".to_owned()),
            (7, "s".to_owned()),
            (8, "d..8".to_owned()),
        ]
    );
    let n: i64 = store
        .conn
        .query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}
