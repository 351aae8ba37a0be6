//! Room counts, school snapshots and the device list as the dashboard shows it.

use firmware_protocol::Label;
use rusqlite::{OptionalExtension, params};
use shared::UnixMillis;
use shared::ids::DeviceId;
use shared::snapshot::SchoolSnapshot;

use super::{Batch, Reader, Store, StoreError, bad_value};

/// A room's latest stored count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccupancyRow {
    /// The room.
    pub room: Label,
    /// The camera that counted.
    pub device: DeviceId,
    /// Students counted.
    pub students: u16,
    /// Adults counted.
    pub adults: u16,
    /// The camera's confidence.
    pub confidence_pct: u8,
    /// When it was received.
    pub at: UnixMillis,
}

/// A stored snapshot with how it came to be taken and which rooms were stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    /// The numbers.
    pub snapshot: SchoolSnapshot,
    /// `change`, `heartbeat` or `scheduled`.
    pub kind: String,
    /// Rooms left out of the totals because their count is stale.
    pub stale_rooms: Vec<String>,
}

/// A device as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatusRow {
    /// Its id.
    pub id: String,
    /// `button` or `camera`.
    pub kind: String,
    /// Its room.
    pub room: String,
    /// `active` or `revoked`.
    pub state: String,
    /// Whether it counts as online.
    pub online: bool,
    /// When it was last heard from (persisted about once a second).
    pub last_seen_at: Option<UnixMillis>,
    /// Latest battery voltage.
    pub battery_mv: Option<u16>,
    /// Latest signal strength.
    pub rssi_dbm: Option<i8>,
    /// Firmware version.
    pub firmware: Option<String>,
    /// Whether the battery is low.
    pub battery_low: bool,
}

/// The newest snapshot's time and kind, and the newest scheduled snapshot's time.
pub(crate) type SnapshotTimes = (Option<(UnixMillis, String)>, Option<UnixMillis>);

impl Batch<'_> {
    /// Stores a room's latest count.
    pub fn save_occupancy(&self, row: &OccupancyRow) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT OR REPLACE INTO occupancy (room, device_id, students, adults, confidence_pct, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                row.room.as_str(),
                row.device.as_str(),
                row.students,
                row.adults,
                row.confidence_pct,
                row.at.get()
            ],
        )?;
        Ok(())
    }

    /// Deletes snapshots taken before `before` and presses received before it (a device
    /// retransmits a press for minutes at most; the alert keeps its count and log).
    pub fn prune_history(&self, before: UnixMillis) -> Result<(usize, usize), StoreError> {
        let snapshots = self
            .tx
            .execute("DELETE FROM snapshots WHERE at < ?1", [before.get()])?;
        let presses = self
            .tx
            .execute("DELETE FROM presses WHERE at < ?1", [before.get()])?;
        Ok((snapshots, presses))
    }

    /// Stores an emitted snapshot.
    pub fn insert_snapshot(&self, row: &SnapshotRow) -> Result<(), StoreError> {
        let s = &row.snapshot;
        self.tx.execute(
            "INSERT INTO snapshots (at, kind, students_total, students_present, students_absent, \
                 teachers_present, active_alerts, devices_online, devices_offline, stale_rooms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                s.at.get(),
                row.kind,
                s.students_total,
                s.students_present,
                s.students_absent,
                s.teachers_present,
                s.active_alerts,
                s.devices_online,
                s.devices_offline,
                row.stale_rooms.join(","),
            ],
        )?;
        Ok(())
    }
}

impl Store {
    /// Every room's latest stored count.
    pub fn occupancy(&self) -> Result<Vec<OccupancyRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT room, device_id, students, adults, confidence_pct, at FROM occupancy ORDER BY room",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u16>(2)?,
                r.get::<_, u16>(3)?,
                r.get::<_, u8>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (room, device, students, adults, confidence_pct, at) = row?;
            out.push(OccupancyRow {
                room: Label::new(&room).map_err(|_| bad_value("room", &room))?,
                device: DeviceId::try_from(device.as_str())
                    .map_err(|_| bad_value("device id", &device))?,
                students,
                adults,
                confidence_pct,
                at: UnixMillis::new(at),
            });
        }
        Ok(out)
    }

    /// The newest snapshot's time and kind, and the newest scheduled one's time.
    pub fn snapshot_times(&self) -> Result<SnapshotTimes, StoreError> {
        let last = self
            .conn
            .query_row(
                "SELECT at, kind FROM snapshots ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((UnixMillis::new(r.get(0)?), r.get::<_, String>(1)?)),
            )
            .optional()?;
        let full: Option<i64> = self.conn.query_row(
            "SELECT MAX(at) FROM snapshots WHERE kind = 'scheduled'",
            [],
            |r| r.get(0),
        )?;
        Ok((last, full.map(UnixMillis::new)))
    }
}

impl Reader {
    /// The newest snapshot of `school`.
    pub fn latest_snapshot(
        &self,
        school: &shared::ids::SchoolId,
    ) -> Result<Option<SnapshotRow>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT at, kind, students_total, students_present, students_absent, \
                        teachers_present, active_alerts, devices_online, devices_offline, stale_rooms \
                 FROM snapshots ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        [
                            r.get::<_, u32>(2)?,
                            r.get::<_, u32>(3)?,
                            r.get::<_, u32>(4)?,
                            r.get::<_, u32>(5)?,
                            r.get::<_, u32>(6)?,
                            r.get::<_, u32>(7)?,
                            r.get::<_, u32>(8)?,
                        ],
                        r.get::<_, String>(9)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.map(|(at, kind, n, stale)| SnapshotRow {
            snapshot: SchoolSnapshot {
                school_id: school.clone(),
                at: UnixMillis::new(at),
                students_total: n[0],
                students_present: n[1],
                students_absent: n[2],
                teachers_present: n[3],
                active_alerts: n[4],
                devices_online: n[5],
                devices_offline: n[6],
            },
            kind,
            stale_rooms: stale
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }))
    }

    /// Every registered device with its persisted health, by id.
    pub fn devices(&self) -> Result<Vec<DeviceStatusRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, room, state, online, last_seen_at, battery_mv, rssi_dbm, firmware, \
                    battery_low FROM devices ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DeviceStatusRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                room: r.get(2)?,
                state: r.get(3)?,
                online: r.get(4)?,
                last_seen_at: r.get::<_, Option<i64>>(5)?.map(UnixMillis::new),
                battery_mv: r.get(6)?,
                rssi_dbm: r.get(7)?,
                firmware: r.get(8)?,
                battery_low: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The school this gateway serves.
    pub fn school_id(&self) -> Result<shared::ids::SchoolId, StoreError> {
        let value: String =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'school_id'", [], |r| {
                    r.get(0)
                })?;
        shared::ids::SchoolId::try_from(value.as_str()).map_err(|_| bad_value("school id", &value))
    }
}
