//! The validated policies the engine's parts apply, owned here so that configuration needs
//! nothing of the agent: device health ([`HealthPolicy`]), room counts ([`OccupancyPolicy`]),
//! the snapshot timers ([`SnapshotPolicy`]) and the rooms themselves ([`Room`]).

use std::time::Duration;

use firmware_protocol::Label;

/// When a device counts as offline and when its battery counts as low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Silence after which an online device is offline.
    pub offline_after: Duration,
    /// Battery voltage below which a device reports a low battery.
    pub battery_low_mv: u16,
}

impl HealthPolicy {
    /// How often devices send a heartbeat (their default configuration).
    pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
}

/// Three missed heartbeats, so one lost frame or a short Wi-Fi dropout does not page anyone;
/// 3.3 V is where the buttons' lithium cells have a few weeks left.
impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            offline_after: Self::HEARTBEAT_INTERVAL.saturating_mul(3),
            battery_low_mv: 3_300,
        }
    }
}

/// When a count goes stale, and the roster the snapshot's absence is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OccupancyPolicy {
    /// Age after which a room's latest count no longer counts towards the totals.
    pub stale_after: Duration,
    /// Students enrolled in the school.
    pub students_total: u32,
}

/// Two minutes: cameras report about every 10 s, so two minutes of silence is a dozen missed
/// reports, which means the camera is gone rather than one frame lost. The roster defaults
/// to zero (none configured), which makes the snapshot's absence zero rather than invented.
impl Default for OccupancyPolicy {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(120),
            students_total: 0,
        }
    }
}

/// The snapshot timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Quiet time after the latest change before a change snapshot is emitted.
    pub debounce: Duration,
    /// Longest time without any snapshot.
    pub heartbeat: Duration,
    /// Period of the scheduled full snapshot.
    pub full: Duration,
}

/// One second of quiet, a heartbeat every 30 s (the devices' own heartbeat period) and a full
/// snapshot every five minutes.
impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self {
            debounce: Duration::from_secs(1),
            heartbeat: Duration::from_secs(30),
            full: Duration::from_secs(5 * 60),
        }
    }
}

/// A room as configured in `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Its code (what devices are registered in).
    pub id: Label,
    /// Building, if configured.
    pub building: Option<String>,
    /// Floor, if configured.
    pub floor: Option<String>,
    /// How many people it holds, if configured.
    pub capacity: Option<u16>,
}
