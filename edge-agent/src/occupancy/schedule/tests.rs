//! Tests for [`SnapshotSchedule`](super::SnapshotSchedule) with the default policy: 1 s
//! debounce (5 s max wait), 30 s heartbeat, 5 min full snapshot.

use super::*;

use SnapshotKind::{Change, Heartbeat, Scheduled};

/// An arbitrary start, far from zero so that times before it are still positive.
const T0: i64 = 1_700_000_000_000;

fn t(offset_ms: i64) -> UnixMillis {
    UnixMillis::new(T0 + offset_ms)
}

/// A schedule that emitted its start-up snapshot at `T0`.
fn started() -> SnapshotSchedule {
    let mut schedule = SnapshotSchedule::new(SnapshotPolicy::default(), t(0));
    assert_eq!(schedule.due(t(0)), Some(Scheduled));
    schedule
}

/// Asserts that `due` is quiet until `next_deadline` and fires exactly there, without
/// disturbing `schedule`.
fn assert_deadline_is_exact(schedule: &SnapshotSchedule) -> SnapshotKind {
    let deadline = schedule.next_deadline();
    let before = UnixMillis::new(deadline.get() - 1);
    assert_eq!(schedule.clone().due(before), None, "before {deadline}");
    let kind = schedule.clone().due(deadline);
    kind.unwrap_or_else(|| panic!("nothing due at the deadline {deadline}"))
}

#[test]
fn kinds_have_stable_names() {
    for (kind, name) in [
        (Change, "change"),
        (Heartbeat, "heartbeat"),
        (Scheduled, "scheduled"),
    ] {
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.to_string(), name);
        assert_eq!(name.parse::<SnapshotKind>(), Ok(kind));
    }
    assert!("full".parse::<SnapshotKind>().is_err());
}

#[test]
fn a_new_schedule_emits_one_scheduled_snapshot_at_once() {
    let mut schedule = started();
    assert_eq!(schedule.due(t(0)), None);
    assert_eq!(schedule.next_deadline(), t(30_000));
}

#[test]
fn a_change_is_emitted_after_a_quiet_debounce() {
    let mut schedule = started();
    schedule.changed(t(10_000));
    assert_eq!(schedule.next_deadline(), t(11_000));
    schedule.changed(t(10_600));
    assert_eq!(schedule.next_deadline(), t(11_600));
    assert_eq!(assert_deadline_is_exact(&schedule), Change);

    assert_eq!(schedule.due(t(11_599)), None);
    assert_eq!(schedule.due(t(11_600)), Some(Change));
    assert_eq!(schedule.due(t(11_601)), None);
    // The change snapshot restarted the heartbeat.
    assert_eq!(schedule.next_deadline(), t(41_600));
}

#[test]
fn constant_change_is_still_emitted_every_five_debounces() {
    let mut schedule = started();
    let mut emitted = Vec::new();
    // A count changing every 200 ms for 12 s, starting at 10.1 s.
    for step in 0..60 {
        let now = t(10_100 + step * 200);
        schedule.changed(now);
        if let Some(kind) = schedule.due(now) {
            emitted.push((now.get() - T0, kind));
        }
    }
    assert_eq!(emitted, vec![(15_100, Change), (20_300, Change)]);
}

#[test]
fn heartbeats_and_scheduled_snapshots_over_ten_quiet_minutes() {
    let mut schedule = started();
    let mut emitted = Vec::new();
    for second in 1..=600 {
        let now = t(second * 1_000);
        if let Some(kind) = schedule.due(now) {
            emitted.push((second, kind));
        }
    }
    let mut expected: Vec<_> = (1..=9).map(|n| (n * 30, Heartbeat)).collect();
    expected.push((300, Scheduled));
    expected.extend((11..=19).map(|n| (n * 30, Heartbeat)));
    expected.push((600, Scheduled));
    assert_eq!(emitted, expected);
}

#[test]
fn scheduled_beats_change_beats_heartbeat() {
    // Change and heartbeat both due: the change is emitted and covers the heartbeat.
    let mut schedule = started();
    schedule.changed(t(29_500));
    assert_eq!(schedule.due(t(30_500)), Some(Change));
    assert_eq!(schedule.due(t(30_500)), None);

    // All three due: one scheduled snapshot, which clears the change.
    let mut schedule = started();
    schedule.changed(t(298_000));
    assert_eq!(schedule.due(t(300_000)), Some(Scheduled));
    assert_eq!(schedule.due(t(300_001)), None);
    assert_eq!(schedule.next_deadline(), t(330_000));
}

#[test]
fn a_heartbeat_includes_pending_changes() {
    let mut schedule = started();
    schedule.changed(t(29_800));
    assert_eq!(schedule.due(t(30_000)), Some(Heartbeat));
    assert_eq!(schedule.due(t(30_800)), None);
    assert_eq!(schedule.next_deadline(), t(60_000));
}

#[test]
fn resume_neither_bursts_nor_waits_a_whole_period() {
    let now = 0;
    // (last emitted, last full, due at once, then next deadline)
    let cases = [
        (None, None, Some(Scheduled), 30_000),
        (Some((-10_000, Heartbeat)), Some(-100_000), None, 20_000),
        (Some((-10_000, Change)), Some(-295_000), None, 5_000),
        (
            Some((-3_600_000, Heartbeat)),
            Some(-3_700_000),
            Some(Scheduled),
            30_000,
        ),
        (Some((-100_000, Scheduled)), None, Some(Heartbeat), 30_000),
        // The clock stepped back an hour across the restart.
        (Some((3_600_000, Scheduled)), Some(3_600_000), None, 30_000),
    ];
    for (i, (emitted, full, at_once, deadline)) in cases.into_iter().enumerate() {
        let emitted = emitted.map(|(at, kind)| (t(at), kind));
        let policy = SnapshotPolicy::default();
        let mut schedule = SnapshotSchedule::resume(policy, emitted, full.map(t), t(now));
        assert_eq!(schedule.due(t(now)), at_once, "case {i}");
        assert_eq!(
            schedule.due(t(now)),
            None,
            "case {i}: a second snapshot at once"
        );
        assert_eq!(schedule.next_deadline(), t(deadline), "case {i}");
        assert_deadline_is_exact(&schedule);
    }
}

#[test]
fn next_deadline_is_exact_through_a_busy_minute() {
    let mut schedule = started();
    for step in 0..600 {
        let now = t(step * 100);
        // Changes in bursts: every 300 ms during the first 4 s of each 15 s.
        if step % 150 < 40 && step % 3 == 0 {
            schedule.changed(now);
        }
        schedule.due(now);
        let deadline = schedule.next_deadline();
        assert!(
            deadline > now,
            "step {step}: deadline {deadline} not after {now}"
        );
        assert_deadline_is_exact(&schedule);
    }
}

#[test]
fn a_clock_stepping_back_does_not_silence_snapshots() {
    let mut schedule = started();
    let stepped = -3_600_000;
    assert_eq!(schedule.due(t(stepped)), None);
    assert_eq!(schedule.next_deadline(), t(stepped + 30_000));
    assert_eq!(schedule.due(t(stepped + 30_000)), Some(Heartbeat));
    assert_eq!(schedule.due(t(stepped + 300_000)), Some(Scheduled));
}
