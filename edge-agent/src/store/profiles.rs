//! What the engine needs to know about each device and room: kind, room and where the room
//! is, press mapping, last persisted health. Plus writing the configured rooms.

use firmware_protocol::Label;
use rusqlite::params;
use shared::UnixMillis;
use shared::ids::DeviceId;

use super::model::{DeviceKind, DeviceState};
use super::{Batch, Store, StoreError, bad_value};
use crate::config::{DevicePressMap, Room};

/// A registered device as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProfile {
    /// Its id.
    pub id: DeviceId,
    /// Button or camera.
    pub kind: DeviceKind,
    /// Active or revoked.
    pub state: DeviceState,
    /// Its room, with the room's place when configured.
    pub room: Label,
    /// See `room`.
    pub building: Option<String>,
    /// See `room`.
    pub floor: Option<String>,
    /// Its own press mapping, if it has one, parsed once here rather than at every press.
    pub press_map: Option<DevicePressMap>,
    /// Last persisted `last_seen_at`.
    pub last_seen_at: Option<UnixMillis>,
    /// Last persisted online flag.
    pub online: bool,
}

/// Health to persist for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthUpdate<'a> {
    /// The device.
    pub device: &'a DeviceId,
    /// When it was last heard from.
    pub last_seen_at: Option<UnixMillis>,
    /// Whether it counts as online.
    pub online: bool,
    /// Its latest battery voltage.
    pub battery_mv: Option<u16>,
    /// Its latest signal strength.
    pub rssi_dbm: Option<i8>,
    /// Its firmware, `major.minor.patch`.
    pub firmware: Option<String>,
    /// Whether its battery is low.
    pub battery_low: bool,
}

impl Store {
    /// Every registered device (active and revoked) with its room's place.
    pub fn device_profiles(&self) -> Result<Vec<DeviceProfile>, StoreError> {
        profiles(&self.conn, None)
    }
}

fn profiles(
    conn: &rusqlite::Connection,
    only: Option<&DeviceId>,
) -> Result<Vec<DeviceProfile>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT d.id, d.kind, d.state, d.room, r.building, r.floor, d.press_map, \
                    d.last_seen_at, d.online \
             FROM devices d LEFT JOIN rooms r ON r.id = d.room \
             WHERE ?1 IS NULL OR d.id = ?1 ORDER BY d.id",
    )?;
    let rows = stmt.query_map([only.map(DeviceId::as_str)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, Option<i64>>(7)?,
            r.get::<_, i64>(8)?,
        ))
    })?;
    let mut profiles = Vec::new();
    for row in rows {
        let (id, kind, state, room, building, floor, press_map, last_seen, online) = row?;
        profiles.push(DeviceProfile {
            id: DeviceId::try_from(id.as_str()).map_err(|_| bad_value("device id", &id))?,
            kind: kind.parse().map_err(|_| bad_value("device kind", &kind))?,
            state: match state.as_str() {
                "active" => DeviceState::Active,
                "revoked" => DeviceState::Revoked,
                _ => return Err(bad_value("device state", &state)),
            },
            room: Label::new(&room).map_err(|_| bad_value("room", &room))?,
            building,
            floor,
            press_map: press_map.and_then(|text| match DevicePressMap::parse(&text) {
                Ok(map) => Some(map),
                Err(e) => {
                    // Registration checks the mapping; one that is damaged since is ignored
                    // rather than keeping the device from raising alerts.
                    tracing::warn!(device = %id, error = %e, "ignoring the device's press map");
                    None
                }
            }),
            last_seen_at: last_seen.map(UnixMillis::new),
            online: online != 0,
        });
    }
    Ok(profiles)
}

impl Batch<'_> {
    /// Replaces the configured rooms with `rooms`.
    pub fn replace_rooms(&self, rooms: &[Room]) -> Result<(), StoreError> {
        self.tx.execute("DELETE FROM rooms", [])?;
        let mut stmt = self
            .tx
            .prepare("INSERT INTO rooms (id, building, floor, capacity) VALUES (?1, ?2, ?3, ?4)")?;
        for room in rooms {
            stmt.execute(params![
                room.id.as_str(),
                room.building,
                room.floor,
                room.capacity
            ])?;
        }
        Ok(())
    }

    /// Persists a device's health.
    pub fn save_health(&self, update: &HealthUpdate<'_>) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE devices SET last_seen_at = ?2, online = ?3, battery_mv = ?4, rssi_dbm = ?5, \
                    firmware = ?6, battery_low = ?7 WHERE id = ?1",
            params![
                update.device.as_str(),
                update.last_seen_at.map(UnixMillis::get),
                update.online,
                update.battery_mv,
                update.rssi_dbm,
                update.firmware,
                update.battery_low,
            ],
        )?;
        Ok(())
    }
}

impl Batch<'_> {
    /// Every device's profile, read inside the engine's transaction.
    pub fn device_profiles(&self) -> Result<Vec<DeviceProfile>, StoreError> {
        profiles(&self.tx, None)
    }

    /// One device's profile (for a device registered after the engine loaded its cache).
    pub fn device_profile(&self, id: &DeviceId) -> Result<Option<DeviceProfile>, StoreError> {
        Ok(profiles(&self.tx, Some(id))?.into_iter().next())
    }
}
