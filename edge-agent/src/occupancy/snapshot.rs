//! [`snapshot`]: the school's headline numbers, from the room counts, the open alerts and
//! the device counts.

use shared::ids::SchoolId;
use shared::{SchoolSnapshot, SnapshotCounts, UnixMillis};

use super::Occupancy;

/// The school snapshot at `at`. Students present are the students counted in rooms with a
/// fresh count; teachers present are all adults counted there (cameras cannot tell a teacher
/// from a visitor, and in an emergency every adult in a room matters). `health` is
/// `(online, offline)` from the device health tracker. Absence is derived by
/// [`SchoolSnapshot::new`] against the configured roster.
pub fn snapshot(
    school: SchoolId,
    at: UnixMillis,
    occupancy: &Occupancy,
    active_alerts: u32,
    health: (u32, u32),
) -> SchoolSnapshot {
    let (students_present, teachers_present) = occupancy.totals();
    let (devices_online, devices_offline) = health;
    let counts = SnapshotCounts {
        students_total: occupancy.policy.students_total,
        students_present,
        teachers_present,
        active_alerts,
        devices_online,
        devices_offline,
    };
    SchoolSnapshot::new(school, at, counts)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use firmware_protocol::Label;

    use super::*;
    use crate::occupancy::{OccupancyPolicy, RoomCount};

    #[test]
    fn snapshot_sums_fresh_rooms_and_derives_absence() {
        let policy = OccupancyPolicy {
            students_total: 640,
            ..OccupancyPolicy::default()
        };
        let mut occupancy = Occupancy::new(policy, HashMap::new());
        let count = |students, adults, stale| RoomCount {
            students,
            adults,
            confidence_pct: 90,
            at: UnixMillis::new(1_000),
            device: "cam-1".parse().unwrap(),
            stale,
        };
        occupancy.load([
            (Label::new("B-204").unwrap(), count(28, 1, false)),
            (Label::new("B-205").unwrap(), count(25, 2, false)),
            (Label::new("Gym").unwrap(), count(300, 9, true)),
        ]);
        let school: SchoolId = "lincoln-high".parse().unwrap();
        let got = snapshot(
            school.clone(),
            UnixMillis::new(5_000),
            &occupancy,
            2,
            (40, 3),
        );
        let expected = SchoolSnapshot {
            school_id: school,
            at: UnixMillis::new(5_000),
            students_total: 640,
            students_present: 53,
            students_absent: 587,
            teachers_present: 3,
            active_alerts: 2,
            devices_online: 40,
            devices_offline: 3,
        };
        assert_eq!(got, expected);
    }
}
