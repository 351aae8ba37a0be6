//! [`SchoolSnapshot`]: the periodic roll-up a gateway reports for its school.
//!
//! The gateway computes one every few minutes from attendance and device health and syncs it
//! like any other record; the cloud keeps the latest per school for the district dashboard.

use serde::{Deserialize, Serialize};

use crate::ids::SchoolId;
use crate::time::UnixMillis;

/// Headline numbers for one school at one instant.
///
/// Build it with [`SchoolSnapshot::new`], which derives `students_absent` so the three student
/// numbers agree. Fields are public for reading and storing; the wire carries them as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchoolSnapshot {
    /// The school.
    pub school_id: SchoolId,
    /// When the numbers were taken.
    pub at: UnixMillis,
    /// Students enrolled.
    pub students_total: u32,
    /// Students checked in.
    pub students_present: u32,
    /// `students_total - students_present`, never negative.
    pub students_absent: u32,
    /// Teachers checked in.
    pub teachers_present: u32,
    /// Alerts currently open.
    pub active_alerts: u32,
    /// Devices seen recently.
    pub devices_online: u32,
    /// Devices not seen recently.
    pub devices_offline: u32,
}

/// The measured numbers a snapshot is made from (everything but the derived ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotCounts {
    /// Students enrolled.
    pub students_total: u32,
    /// Students checked in.
    pub students_present: u32,
    /// Teachers checked in.
    pub teachers_present: u32,
    /// Alerts currently open.
    pub active_alerts: u32,
    /// Devices seen recently.
    pub devices_online: u32,
    /// Devices not seen recently.
    pub devices_offline: u32,
}

impl SchoolSnapshot {
    /// A snapshot with `students_absent` derived. Check-ins can briefly exceed enrolment
    /// (a visitor badge, a transfer not yet enrolled), so absence saturates at zero.
    pub fn new(school_id: SchoolId, at: UnixMillis, counts: SnapshotCounts) -> Self {
        Self {
            school_id,
            at,
            students_total: counts.students_total,
            students_present: counts.students_present,
            students_absent: counts
                .students_total
                .saturating_sub(counts.students_present),
            teachers_present: counts.teachers_present,
            active_alerts: counts.active_alerts,
            devices_online: counts.devices_online,
            devices_offline: counts.devices_offline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(total: u32, present: u32) -> SchoolSnapshot {
        let counts = SnapshotCounts {
            students_total: total,
            students_present: present,
            ..SnapshotCounts::default()
        };
        SchoolSnapshot::new("lincoln-high".parse().unwrap(), UnixMillis::new(0), counts)
    }

    #[test]
    fn absence_is_derived_and_never_negative() {
        assert_eq!(snapshot(640, 602).students_absent, 38);
        assert_eq!(snapshot(10, 12).students_absent, 0);
    }
}
