//! The sections about the gateway's core: `[health]`, `[snapshots]` and `[[rooms]]` (and the
//! roster size in `[school]`), read raw and validated into the engine's policies.

use std::collections::HashSet;
use std::time::Duration;

use firmware_protocol::Label;
use serde::Deserialize;

use super::policy::{HealthPolicy, OccupancyPolicy, Room, SnapshotPolicy};
use super::{ConfigError, within};

/// Most rooms a gateway's configuration may list.
pub const MAX_ROOMS: usize = 2_000;
/// Longest building or floor name, in characters.
const MAX_PLACE_CHARS: usize = 64;

/// `[health]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub heartbeat_interval_s: Option<u64>,
    pub offline_after_s: Option<u64>,
    pub battery_low_mv: Option<u16>,
}

/// `[snapshots]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnapshots {
    pub debounce_ms: Option<u64>,
    pub heartbeat_s: Option<u64>,
    pub full_s: Option<u64>,
    pub stale_after_s: Option<u64>,
}

/// One `[[rooms]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoom {
    pub id: String,
    pub building: Option<String>,
    pub floor: Option<String>,
    pub capacity: Option<u16>,
}

/// Device health: the heartbeat interval devices are configured with, when they count as
/// offline, and the battery threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// How often devices send a heartbeat.
    pub heartbeat_interval: Duration,
    /// The policy the engine applies.
    pub policy: HealthPolicy,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            heartbeat_interval: HealthPolicy::HEARTBEAT_INTERVAL,
            policy: HealthPolicy::default(),
        }
    }
}

fn invalid(field: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { field, reason }
}

impl RawHealth {
    pub(super) fn validate(self) -> Result<HealthSettings, ConfigError> {
        let defaults = HealthPolicy::default();
        let interval = within(
            "health.heartbeat_interval_s",
            self.heartbeat_interval_s,
            HealthPolicy::HEARTBEAT_INTERVAL.as_secs(),
            1,
            3_600,
        )?;
        // At least two missed heartbeats before a device counts as offline: one lost frame
        // must not page the front office.
        let offline_after = within(
            "health.offline_after_s",
            self.offline_after_s,
            interval * 3,
            interval * 2,
            86_400,
        )?;
        let battery_low_mv = match self.battery_low_mv {
            None => defaults.battery_low_mv,
            Some(mv) if (1_000..=10_000).contains(&mv) => mv,
            Some(mv) => {
                return Err(invalid(
                    "health.battery_low_mv",
                    format!("{mv} is outside 1000..=10000 millivolts"),
                ));
            }
        };
        Ok(HealthSettings {
            heartbeat_interval: Duration::from_secs(interval),
            policy: HealthPolicy {
                offline_after: Duration::from_secs(offline_after),
                battery_low_mv,
            },
        })
    }
}

impl RawSnapshots {
    pub(super) fn validate(
        self,
        students_total: u32,
    ) -> Result<(SnapshotPolicy, OccupancyPolicy), ConfigError> {
        let snapshots = SnapshotPolicy::default();
        let occupancy = OccupancyPolicy::default();
        let debounce = within(
            "snapshots.debounce_ms",
            self.debounce_ms,
            millis(snapshots.debounce),
            100,
            60_000,
        )?;
        let heartbeat = within(
            "snapshots.heartbeat_s",
            self.heartbeat_s,
            snapshots.heartbeat.as_secs(),
            1,
            3_600,
        )?;
        let full = within(
            "snapshots.full_s",
            self.full_s,
            snapshots.full.as_secs(),
            heartbeat,
            86_400,
        )?;
        let stale_after = within(
            "snapshots.stale_after_s",
            self.stale_after_s,
            occupancy.stale_after.as_secs(),
            1,
            86_400,
        )?;
        Ok((
            SnapshotPolicy {
                debounce: Duration::from_millis(debounce),
                heartbeat: Duration::from_secs(heartbeat),
                full: Duration::from_secs(full),
            },
            OccupancyPolicy {
                stale_after: Duration::from_secs(stale_after),
                students_total,
            },
        ))
    }
}

/// Checks the rooms: valid codes, no code twice, names short and printable.
pub(super) fn validate_rooms(raw: Vec<RawRoom>) -> Result<Vec<Room>, ConfigError> {
    if raw.len() > MAX_ROOMS {
        return Err(invalid(
            "rooms",
            format!(
                "{} rooms listed, at most {MAX_ROOMS} are allowed",
                raw.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    let place = |what: &str, value: Option<String>| -> Result<Option<String>, ConfigError> {
        let Some(value) = value.map(|v| v.trim().to_owned()) else {
            return Ok(None);
        };
        if value.is_empty()
            || value.chars().count() > MAX_PLACE_CHARS
            || value.chars().any(char::is_control)
        {
            return Err(invalid(
                "rooms",
                format!("{what} {value:?} must be 1..={MAX_PLACE_CHARS} printable characters"),
            ));
        }
        Ok(Some(value))
    };
    raw.into_iter()
        .map(|room| {
            let id = Label::new(&room.id)
                .map_err(|e| invalid("rooms.id", format!("{:?}: {e}", room.id)))?;
            if !seen.insert(id) {
                return Err(invalid(
                    "rooms.id",
                    format!("{:?} is listed twice", room.id),
                ));
            }
            if room.capacity == Some(0) {
                return Err(invalid(
                    "rooms.capacity",
                    format!("room {:?}: must be at least 1", room.id),
                ));
            }
            Ok(Room {
                id,
                building: place("building", room.building)?,
                floor: place("floor", room.floor)?,
                capacity: room.capacity,
            })
        })
        .collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
