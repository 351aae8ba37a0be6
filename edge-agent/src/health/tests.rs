//! Tests for [`Health`](super::Health): transitions, timeouts at their boundary, battery
//! hysteresis, clock steps and coalesced persistence.

use std::time::Duration;

use firmware_protocol::{FirmwareVersion, Heartbeat};
use shared::UnixMillis;
use shared::ids::DeviceId;
use shared::sync::{DeviceHealthRecord, DeviceStatus};

use super::*;

const OFFLINE_AFTER_MS: i64 = 90_000;

fn dev(name: &str) -> DeviceId {
    name.parse().unwrap()
}

fn t(millis: i64) -> UnixMillis {
    UnixMillis::new(millis)
}

fn beat(battery_mv: u16) -> Heartbeat {
    Heartbeat {
        uptime_s: 60,
        firmware: FirmwareVersion {
            major: 1,
            minor: 2,
            patch: 3,
        },
        battery_mv,
        rssi_dbm: -61,
        free_heap: 40_000,
    }
}

fn health(devices: &[&str]) -> Health {
    let mut health = Health::new(HealthPolicy::default());
    for name in devices {
        health.add(dev(name));
    }
    health
}

fn kinds(changes: &[HealthChange]) -> Vec<ChangeKind> {
    changes.iter().map(|c| c.change).collect()
}

const SILENT: ChangeKind = ChangeKind::Offline {
    reason: OfflineReason::Silent,
};

#[test]
fn default_policy_is_three_heartbeats_and_3300_mv() {
    let policy = HealthPolicy::default();
    assert_eq!(policy.offline_after, Duration::from_secs(90));
    assert_eq!(policy.battery_low_mv, 3_300);
}

#[test]
fn first_uplink_brings_a_device_online_once() {
    let mut health = health(&["btn-1"]);
    assert_eq!(health.get(&dev("btn-1")), Some(&DeviceHealth::NEVER_SEEN));
    assert_eq!(health.counts(), (0, 1));

    let changes = health.seen(&dev("btn-1"), t(1_000), Some(&beat(3_600)));
    let expected = DeviceHealth {
        status: Liveness::Online,
        last_seen: Some(t(1_000)),
        battery_mv: Some(3_600),
        rssi_dbm: Some(-61),
        firmware: Some(FirmwareVersion {
            major: 1,
            minor: 2,
            patch: 3,
        }),
        battery_low: false,
    };
    assert_eq!(
        changes,
        vec![HealthChange {
            device: dev("btn-1"),
            at: t(1_000),
            change: ChangeKind::Online,
            health: expected,
        }]
    );
    assert_eq!(health.seen(&dev("btn-1"), t(2_000), None), vec![]);
    assert_eq!(health.get(&dev("btn-1")).unwrap().last_seen, Some(t(2_000)));
    // A frame without a heartbeat keeps the last known battery and signal.
    assert_eq!(health.get(&dev("btn-1")).unwrap().battery_mv, Some(3_600));
    assert_eq!(health.counts(), (1, 0));
}

#[test]
fn silence_takes_a_device_offline_exactly_at_offline_after() {
    let mut health = health(&["btn-1"]);
    health.seen(&dev("btn-1"), t(1_000), None);
    let deadline = 1_000 + OFFLINE_AFTER_MS;
    assert_eq!(health.next_deadline(), Some(t(deadline)));

    assert_eq!(health.tick(t(deadline - 1)), vec![]);
    let changes = health.tick(t(deadline));
    assert_eq!(kinds(&changes), vec![SILENT]);
    assert_eq!(changes[0].at, t(deadline));
    assert_eq!(changes[0].health.status, Liveness::Offline);
    assert_eq!(changes[0].health.last_seen, Some(t(1_000)));
    assert_eq!(health.next_deadline(), None);
    // Offline once, not on every tick after.
    assert_eq!(health.tick(t(deadline + 10_000)), vec![]);

    let back = health.seen(&dev("btn-1"), t(deadline + 20_000), None);
    assert_eq!(kinds(&back), vec![ChangeKind::Online]);
}

#[test]
fn last_will_takes_an_online_device_offline_at_once() {
    let mut health = health(&["btn-1", "btn-2"]);
    health.seen(&dev("btn-1"), t(1_000), None);

    let change = health.last_will(&dev("btn-1"), t(1_500)).unwrap();
    assert_eq!(
        change.change,
        ChangeKind::Offline {
            reason: OfflineReason::LastWill
        }
    );
    assert_eq!(change.at, t(1_500));
    assert_eq!(change.health.last_seen, Some(t(1_000)));
    // Already offline, never seen, or unknown: nothing to announce.
    assert_eq!(health.last_will(&dev("btn-1"), t(1_600)), None);
    assert_eq!(health.last_will(&dev("btn-2"), t(1_600)), None);
    assert_eq!(health.last_will(&dev("ghost"), t(1_600)), None);
    // A timeout does not announce it a second time.
    assert_eq!(health.tick(t(1_000 + OFFLINE_AFTER_MS)), vec![]);
}

#[test]
fn battery_low_and_ok_have_hysteresis() {
    // (reading in mV, change expected); the threshold is 3,300 and recovery needs 3,400.
    let readings: [(u16, Option<ChangeKind>); 9] = [
        (3_400, None),
        (3_300, None),
        (3_299, Some(ChangeKind::BatteryLow)),
        (3_250, None),
        (3_300, None),
        (3_399, None),
        (3_400, Some(ChangeKind::BatteryOk)),
        (3_350, None),
        (3_299, Some(ChangeKind::BatteryLow)),
    ];
    let mut health = health(&["btn-1"]);
    health.seen(&dev("btn-1"), t(0), None);
    for (i, (mv, expected)) in readings.into_iter().enumerate() {
        let now = t(1_000 * (i as i64 + 1));
        let changes = health.seen(&dev("btn-1"), now, Some(&beat(mv)));
        assert_eq!(
            kinds(&changes),
            Vec::from_iter(expected),
            "reading {i}: {mv} mV"
        );
        let low = health.get(&dev("btn-1")).unwrap().battery_low;
        assert_eq!(low, matches!(i, 2..=5 | 8), "reading {i}: {mv} mV");
    }
}

#[test]
fn a_device_returning_with_a_low_battery_reports_both_changes() {
    let mut health = health(&["btn-1"]);
    let changes = health.seen(&dev("btn-1"), t(1_000), Some(&beat(3_100)));
    assert_eq!(
        kinds(&changes),
        vec![ChangeKind::Online, ChangeKind::BatteryLow]
    );
    assert!(changes.iter().all(|c| c.health.battery_low));
    // The cloud keeps the latest record, which must not drop the battery warning.
    assert_eq!(changes[0].to_record().status, DeviceStatus::BatteryLow);
    assert_eq!(
        changes[1].to_record(),
        DeviceHealthRecord {
            device_id: dev("btn-1"),
            status: DeviceStatus::BatteryLow,
            battery_mv: Some(3_100),
            rssi_dbm: Some(-61),
        }
    );
}

#[test]
fn change_kinds_map_to_device_statuses() {
    let cases = [
        (ChangeKind::Online, DeviceStatus::Online),
        (SILENT, DeviceStatus::Offline),
        (
            ChangeKind::Offline {
                reason: OfflineReason::LastWill,
            },
            DeviceStatus::Offline,
        ),
        (ChangeKind::BatteryLow, DeviceStatus::BatteryLow),
        (ChangeKind::BatteryOk, DeviceStatus::Online),
    ];
    for (kind, status) in cases {
        assert_eq!(kind.status(), status, "{kind:?}");
    }
}

#[test]
fn unknown_and_removed_devices_are_ignored() {
    let mut health = health(&["btn-1"]);
    assert_eq!(
        health.seen(&dev("ghost"), t(1_000), Some(&beat(3_000))),
        vec![]
    );
    assert_eq!(health.get(&dev("ghost")), None);

    health.seen(&dev("btn-1"), t(1_000), None);
    health.remove(&dev("btn-1"));
    assert_eq!(health.seen(&dev("btn-1"), t(2_000), None), vec![]);
    assert_eq!(health.counts(), (0, 0));
    assert_eq!(health.take_dirty(), vec![]);
    assert_eq!(health.next_deadline(), None);
}

#[test]
fn adding_a_registered_device_again_keeps_its_state() {
    let mut health = health(&["btn-1"]);
    health.seen(&dev("btn-1"), t(1_000), None);
    health.add(dev("btn-1"));
    assert_eq!(health.get(&dev("btn-1")).unwrap().status, Liveness::Online);
}

#[test]
fn a_clock_stepping_back_neither_panics_nor_takes_devices_offline() {
    let mut health = health(&["btn-1", "btn-2"]);
    health.seen(&dev("btn-1"), t(1_000_000), None);
    health.seen(&dev("btn-2"), t(1_000_000), None);
    health.take_dirty();

    // The clock steps back an hour: nobody is silent for a negative time.
    let stepped = 1_000_000 - 3_600_000;
    assert_eq!(health.tick(t(stepped)), vec![]);
    // Silence is measured from the step, not an hour later.
    assert_eq!(
        health.get(&dev("btn-2")).unwrap().last_seen,
        Some(t(stepped))
    );
    assert_eq!(health.next_deadline(), Some(t(stepped + OFFLINE_AFTER_MS)));
    assert_eq!(health.take_dirty().len(), 2);

    assert_eq!(health.seen(&dev("btn-1"), t(stepped + 10), None), vec![]);
    let changes = health.tick(t(stepped + OFFLINE_AFTER_MS));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].device, dev("btn-2"));
    assert_eq!(changes[0].change, SILENT);
}

#[test]
fn a_thousand_heartbeats_make_one_dirty_entry() {
    let mut health = health(&["btn-1", "btn-2"]);
    for i in 0..1_000 {
        health.seen(&dev("btn-1"), t(i * 30), Some(&beat(3_600)));
    }
    let dirty = health.take_dirty();
    assert_eq!(dirty.len(), 1);
    assert_eq!(dirty[0].0, dev("btn-1"));
    assert_eq!(dirty[0].1.last_seen, Some(t(999 * 30)));
    assert_eq!(health.take_dirty(), vec![]);

    health.last_will(&dev("btn-1"), t(40_000));
    assert_eq!(health.take_dirty()[0].1.status, Liveness::Offline);
}

#[test]
fn load_restores_devices_and_announces_the_stale_ones() {
    let now = 1_000_000;
    let fresh = Some(t(now - OFFLINE_AFTER_MS + 1));
    let stale = Some(t(now - OFFLINE_AFTER_MS));
    // (device, stored last_seen, stored online, status after load, Offline announced)
    let cases = [
        ("a-never", None, false, Liveness::NeverSeen, false),
        ("b-never-online", None, true, Liveness::NeverSeen, true),
        ("c-fresh-online", fresh, true, Liveness::Online, false),
        ("d-fresh-offline", fresh, false, Liveness::Offline, false),
        ("e-stale-online", stale, true, Liveness::Offline, true),
        ("f-stale-offline", stale, false, Liveness::Offline, false),
    ];
    let mut health = Health::new(HealthPolicy::default());
    let stored = cases.map(|(name, seen, online, ..)| (dev(name), seen, online));
    let changes = health.load(stored, t(now));

    for (name, seen, _, status, _) in cases {
        let got = health.get(&dev(name)).unwrap();
        assert_eq!((got.status, got.last_seen), (status, seen), "{name}");
    }
    let announced: Vec<_> = cases.iter().filter(|c| c.4).map(|c| dev(c.0)).collect();
    let changed: Vec<_> = changes.iter().map(|c| c.device.clone()).collect();
    assert_eq!(changed, announced);
    assert!(changes.iter().all(|c| c.change == SILENT && c.at == t(now)));
    let dirty: Vec<_> = health.take_dirty().into_iter().map(|d| d.0).collect();
    assert_eq!(dirty, announced);
    assert_eq!(health.counts(), (1, 5));
    assert_eq!(health.next_deadline(), Some(t(now + 1)));
}

#[test]
fn counts_and_next_deadline_follow_the_earliest_online_device() {
    let mut health = health(&["a", "b", "c", "d"]);
    health.seen(&dev("a"), t(5_000), None);
    health.seen(&dev("b"), t(2_000), None);
    health.seen(&dev("c"), t(9_000), None);
    assert_eq!(health.counts(), (3, 1));
    assert_eq!(health.next_deadline(), Some(t(2_000 + OFFLINE_AFTER_MS)));

    health.last_will(&dev("b"), t(9_500));
    assert_eq!(health.counts(), (2, 2));
    assert_eq!(health.next_deadline(), Some(t(5_000 + OFFLINE_AFTER_MS)));
}
