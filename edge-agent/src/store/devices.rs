//! Registering and revoking devices. Each change runs in one transaction together with
//! the caller's work (issuing the certificate, writing the CRL), so a failure leaves neither
//! a half-registered device nor a revocation without its CRL.

use rusqlite::OptionalExtension;
use shared::UnixMillis;
use shared::ids::DeviceId;

use super::model::{CertRole, NewDevice};
use super::{Store, StoreError, serial_from};
use crate::pki::Revoked;

/// What a CRL written after a revocation must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlUpdate {
    /// The CRL's number; larger than any number handed out before.
    pub number: u64,
    /// Every revoked certificate, oldest first.
    pub revoked: Vec<Revoked>,
    /// The serials revoked just now.
    pub newly_revoked: Vec<u64>,
}

impl Store {
    /// Registers `device` with a certificate valid from `not_before` to `not_after`, then calls
    /// `issue` with the certificate's serial. The registration is committed only if `issue`
    /// succeeds.
    pub fn add_device<T, E: From<StoreError>>(
        &mut self,
        device: &NewDevice,
        now: UnixMillis,
        not_before: UnixMillis,
        not_after: UnixMillis,
        issue: impl FnOnce(u64) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self.write_transaction()?;
        let exists = holder_state(&tx, Holder::Device, device.id.as_str())?.is_some();
        if exists {
            return Err(StoreError::DeviceExists(device.id.clone()).into());
        }
        tx.execute(
            "INSERT INTO devices (id, kind, room, state, created_at, press_map) \
             VALUES (?1, ?2, ?3, 'active', ?4, ?5)",
            (
                device.id.as_str(),
                device.kind.as_str(),
                device.room.as_str(),
                now.get(),
                device.press_map.as_deref(),
            ),
        )
        .map_err(StoreError::from)?;
        issue_and_commit(
            tx,
            Holder::Device,
            device.id.as_str(),
            not_before,
            not_after,
            issue,
        )
    }

    /// Marks `id` and its certificates revoked, takes the next CRL number, and calls `write_crl`
    /// with the full list of revoked certificates. Committed only if `write_crl` succeeds.
    pub fn revoke_device<T, E: From<StoreError>>(
        &mut self,
        id: &DeviceId,
        now: UnixMillis,
        write_crl: impl FnOnce(&CrlUpdate) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self.write_transaction()?;
        match holder_state(&tx, Holder::Device, id.as_str())?.as_deref() {
            None => return Err(StoreError::UnknownDevice(id.clone()).into()),
            Some("revoked") => return Err(StoreError::AlreadyRevoked(id.clone()).into()),
            Some(_) => {}
        }
        revoke_and_commit(tx, Holder::Device, id.as_str(), now, write_crl)
    }
}

/// Who holds client certificates from the gateway's CA. Devices and integrations are
/// registered, issued and revoked the same way; this names their table and certificate column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Holder {
    Device,
    Integration,
}

impl Holder {
    fn table(self) -> &'static str {
        match self {
            Holder::Device => "devices",
            Holder::Integration => "integrations",
        }
    }

    fn cert_column(self) -> &'static str {
        match self {
            Holder::Device => "device_id",
            Holder::Integration => "integration_id",
        }
    }

    fn role(self) -> CertRole {
        match self {
            Holder::Device => CertRole::Device,
            Holder::Integration => CertRole::Integration,
        }
    }
}

// The table and column names below are `Holder`'s own constants, never input.

/// The holder's state (`active` or `revoked`); `None` when `id` is not registered.
pub(super) fn holder_state(
    tx: &rusqlite::Transaction<'_>,
    holder: Holder,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let sql = format!("SELECT state FROM {} WHERE id = ?1", holder.table());
    Ok(tx.query_row(&sql, [id], |r| r.get(0)).optional()?)
}

/// Records a certificate for the holder just registered in `tx`, calls `issue` with its serial
/// and commits only if `issue` succeeds.
pub(super) fn issue_and_commit<T, E: From<StoreError>>(
    tx: rusqlite::Transaction<'_>,
    holder: Holder,
    id: &str,
    not_before: UnixMillis,
    not_after: UnixMillis,
    issue: impl FnOnce(u64) -> Result<T, E>,
) -> Result<T, E> {
    let sql = format!(
        "INSERT INTO certificates (role, {}, not_before, not_after) VALUES (?1, ?2, ?3, ?4)",
        holder.cert_column()
    );
    tx.execute(
        &sql,
        (
            holder.role().as_str(),
            id,
            not_before.get(),
            not_after.get(),
        ),
    )
    .map_err(StoreError::from)?;
    let serial = serial_from(tx.last_insert_rowid())?;
    let value = issue(serial)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(value)
}

/// Marks an active holder and its certificates revoked, takes the next CRL number, calls
/// `write_crl` with every revoked certificate and commits only if it succeeds.
pub(super) fn revoke_and_commit<T, E: From<StoreError>>(
    tx: rusqlite::Transaction<'_>,
    holder: Holder,
    id: &str,
    now: UnixMillis,
    write_crl: impl FnOnce(&CrlUpdate) -> Result<T, E>,
) -> Result<T, E> {
    let sql = format!(
        "UPDATE {} SET state = 'revoked', revoked_at = ?2 WHERE id = ?1",
        holder.table()
    );
    tx.execute(&sql, (id, now.get()))
        .map_err(StoreError::from)?;
    let newly_revoked = revoke_serials(
        &tx,
        &format!(
            "UPDATE certificates SET revoked_at = ?2 \
             WHERE {} = ?1 AND revoked_at IS NULL RETURNING serial",
            holder.cert_column()
        ),
        id,
        now,
    )?;
    let update = crl_update(&tx, newly_revoked)?;
    let value = write_crl(&update)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(value)
}

/// Runs `sql` (an `UPDATE certificates … RETURNING serial` of one owner's certificates, `?1`
/// the owner, `?2` the time) and returns the serials it revoked, in order.
pub(super) fn revoke_serials(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    owner: &str,
    now: UnixMillis,
) -> Result<Vec<u64>, StoreError> {
    let mut stmt = tx.prepare(sql)?;
    let rows = stmt.query_map((owner, now.get()), |r| r.get::<_, i64>(0))?;
    let mut serials = Vec::new();
    for row in rows {
        serials.push(serial_from(row?)?);
    }
    serials.sort_unstable();
    Ok(serials)
}

/// Takes the next CRL number and lists every revoked certificate (devices' and integrations'
/// alike: the gateway has one CRL), inside the revoking transaction.
pub(super) fn crl_update(
    tx: &rusqlite::Transaction<'_>,
    newly_revoked: Vec<u64>,
) -> Result<CrlUpdate, StoreError> {
    let number: i64 = tx.query_row(
        "UPDATE crl_state SET number = number + 1 WHERE id = 1 RETURNING number",
        [],
        |r| r.get(0),
    )?;
    let mut stmt = tx.prepare(
        "SELECT serial, revoked_at FROM certificates \
         WHERE revoked_at IS NOT NULL ORDER BY serial",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
    let mut revoked = Vec::new();
    for row in rows {
        let (serial, at) = row?;
        revoked.push(Revoked {
            serial: serial_from(serial)?,
            at: UnixMillis::new(at),
        });
    }
    Ok(CrlUpdate {
        number: serial_from(number)?,
        revoked,
        newly_revoked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeviceKind, DeviceState};
    use firmware_protocol::Label;
    use shared::ids::SchoolId;

    fn store(dir: &tempfile::TempDir) -> Store {
        let school = SchoolId::try_from("lincoln-high").unwrap();
        Store::create(
            &dir.path().join(crate::layout::DB_FILE),
            &school,
            UnixMillis::new(1_000),
        )
        .unwrap()
    }

    fn device(id: &str) -> NewDevice {
        NewDevice {
            id: DeviceId::try_from(id).unwrap(),
            kind: DeviceKind::Button,
            room: Label::new("B-204").unwrap(),
            press_map: None,
        }
    }

    fn add(store: &mut Store, id: &str) -> Result<u64, StoreError> {
        let t = UnixMillis::new(5_000);
        store.add_device(&device(id), t, t, t, Ok::<_, StoreError>)
    }

    #[test]
    fn serials_are_unique_and_a_failed_issue_registers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir);
        let a = add(&mut store, "btn-1").unwrap();
        let t = UnixMillis::new(5_000);
        let failed: Result<(), StoreError> = store.add_device(&device("btn-2"), t, t, t, |_| {
            Err(StoreError::Corrupt("simulated".into()))
        });
        assert!(failed.is_err());
        let b = add(&mut store, "btn-3").unwrap();
        assert_ne!(a, b);
        let ids: Vec<_> = store
            .list_devices()
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert!(matches!(
            add(&mut store, "btn-1"),
            Err(StoreError::DeviceExists(_))
        ));
    }

    #[test]
    fn revocation_numbers_grow_and_list_every_revoked_serial() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir);
        let a = add(&mut store, "btn-1").unwrap();
        let b = add(&mut store, "btn-2").unwrap();
        let now = UnixMillis::new(9_000);
        let id = |s: &str| DeviceId::try_from(s).unwrap();
        let first = store
            .revoke_device(&id("btn-1"), now, |u| Ok::<_, StoreError>(u.clone()))
            .unwrap();
        let second = store
            .revoke_device(&id("btn-2"), now, |u| Ok::<_, StoreError>(u.clone()))
            .unwrap();
        assert!(second.number > first.number);
        assert_eq!(first.newly_revoked, vec![a]);
        let serials: Vec<_> = second.revoked.iter().map(|r| r.serial).collect();
        assert_eq!(serials, vec![a, b]);
        let again = store.revoke_device(&id("btn-1"), now, |_| Ok::<_, StoreError>(()));
        assert!(matches!(again, Err(StoreError::AlreadyRevoked(_))));
        let unknown = store.revoke_device(&id("nope"), now, |_| Ok::<_, StoreError>(()));
        assert!(matches!(unknown, Err(StoreError::UnknownDevice(_))));
        let states: Vec<_> = store
            .list_devices()
            .unwrap()
            .iter()
            .map(|d| d.state)
            .collect();
        assert_eq!(states, vec![DeviceState::Revoked, DeviceState::Revoked]);
    }
}
