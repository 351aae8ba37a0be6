//! Reading the device table back as typed rows.

use firmware_protocol::Label;
use rusqlite::Row;
use shared::UnixMillis;
use shared::ids::DeviceId;

use super::model::{DeviceRow, DeviceState};
use super::{Store, StoreError, serial_from};

impl Store {
    /// Every registered device with its newest certificate, ordered by id.
    pub fn list_devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.id, d.kind, d.room, d.state, d.created_at, d.revoked_at, d.last_seen_at, \
                    c.serial, c.not_after \
             FROM devices d \
             JOIN certificates c ON c.serial = \
                 (SELECT MAX(serial) FROM certificates WHERE device_id = d.id) \
             ORDER BY d.id",
        )?;
        let rows = stmt.query_map([], raw_row)?;
        let mut devices = Vec::new();
        for row in rows {
            devices.push(device_row(row?)?);
        }
        Ok(devices)
    }
}

type RawRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
);

fn raw_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn device_row(raw: RawRow) -> Result<DeviceRow, StoreError> {
    let (id, kind, room, state, created_at, revoked_at, last_seen_at, serial, not_after) = raw;
    let bad = |what, value: &str| StoreError::BadValue {
        what,
        value: value.to_owned(),
    };
    Ok(DeviceRow {
        id: DeviceId::try_from(id.as_str()).map_err(|_| bad("device id", &id))?,
        kind: kind.parse().map_err(|_| bad("device kind", &kind))?,
        room: Label::new(&room).map_err(|_| bad("room", &room))?,
        state: match state.as_str() {
            "active" => DeviceState::Active,
            "revoked" => DeviceState::Revoked,
            _ => return Err(bad("device state", &state)),
        },
        created_at: UnixMillis::new(created_at),
        revoked_at: revoked_at.map(UnixMillis::new),
        last_seen_at: last_seen_at.map(UnixMillis::new),
        serial: serial_from(serial)?,
        expires_at: UnixMillis::new(not_after),
    })
}
