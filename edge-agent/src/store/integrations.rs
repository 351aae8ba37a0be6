//! Adding, listing and revoking integrations. As with devices, each change runs in one
//! transaction together with the caller's work (issuing the certificate and writing the
//! bundle, or writing the CRL), so a failure leaves nothing half done.

use shared::UnixMillis;

use super::devices::{CrlUpdate, Holder, holder_state, issue_and_commit, revoke_and_commit};
use super::model::{IntegrationRow, IntegrationState};
use super::{Store, StoreError, bad_value, serial_from};
use crate::integration::IntegrationId;

impl Store {
    /// Adds integration `id` with a certificate valid from `not_before` to `not_after`, then
    /// calls `issue` with the certificate's serial (from the same sequence as every other
    /// certificate of the CA). Committed only if `issue` succeeds. An id is never reused, not
    /// even after its integration was revoked.
    pub fn add_integration<T, E: From<StoreError>>(
        &mut self,
        id: &IntegrationId,
        now: UnixMillis,
        not_before: UnixMillis,
        not_after: UnixMillis,
        issue: impl FnOnce(u64) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self.write_transaction()?;
        if holder_state(&tx, Holder::Integration, id.as_str())?.is_some() {
            return Err(StoreError::IntegrationExists(id.clone()).into());
        }
        tx.execute(
            "INSERT INTO integrations (id, state, created_at) VALUES (?1, 'active', ?2)",
            (id.as_str(), now.get()),
        )
        .map_err(StoreError::from)?;
        issue_and_commit(
            tx,
            Holder::Integration,
            id.as_str(),
            not_before,
            not_after,
            issue,
        )
    }

    /// Marks integration `id` and its certificates revoked, takes the next CRL number and calls
    /// `write_crl` with every revoked certificate of the CA. Committed only if `write_crl`
    /// succeeds.
    pub fn revoke_integration<T, E: From<StoreError>>(
        &mut self,
        id: &IntegrationId,
        now: UnixMillis,
        write_crl: impl FnOnce(&CrlUpdate) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self.write_transaction()?;
        match holder_state(&tx, Holder::Integration, id.as_str())?.as_deref() {
            None => return Err(StoreError::UnknownIntegration(id.clone()).into()),
            Some("revoked") => {
                return Err(StoreError::IntegrationAlreadyRevoked(id.clone()).into());
            }
            Some(_) => {}
        }
        revoke_and_commit(tx, Holder::Integration, id.as_str(), now, write_crl)
    }

    /// Every integration with its newest certificate, ordered by id.
    pub fn list_integrations(&self) -> Result<Vec<IntegrationRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT i.id, i.state, i.created_at, i.revoked_at, c.serial, c.not_after \
             FROM integrations i \
             JOIN certificates c ON c.serial = \
                 (SELECT MAX(serial) FROM certificates WHERE integration_id = i.id) \
             ORDER BY i.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut integrations = Vec::new();
        for row in rows {
            let (id, state, created_at, revoked_at, serial, not_after) = row?;
            integrations.push(IntegrationRow {
                id: id.parse().map_err(|_| bad_value("integration id", &id))?,
                state: match state.as_str() {
                    "active" => IntegrationState::Active,
                    "revoked" => IntegrationState::Revoked,
                    _ => return Err(bad_value("integration state", &state)),
                },
                created_at: UnixMillis::new(created_at),
                revoked_at: revoked_at.map(UnixMillis::new),
                serial: serial_from(serial)?,
                expires_at: UnixMillis::new(not_after),
            });
        }
        Ok(integrations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewDevice;
    use crate::store::model::DeviceKind;
    use firmware_protocol::Label;
    use shared::ids::{DeviceId, SchoolId};

    fn store(dir: &tempfile::TempDir) -> Store {
        let school = SchoolId::try_from("lincoln-high").unwrap();
        Store::create(
            &dir.path().join(crate::layout::DB_FILE),
            &school,
            UnixMillis::new(1_000),
        )
        .unwrap()
    }

    fn id(s: &str) -> IntegrationId {
        s.parse().unwrap()
    }

    fn add(store: &mut Store, name: &str) -> Result<u64, StoreError> {
        let t = UnixMillis::new(5_000);
        store.add_integration(&id(name), t, t, t, Ok::<_, StoreError>)
    }

    fn add_device(store: &mut Store, name: &str) -> u64 {
        let t = UnixMillis::new(5_000);
        let device = NewDevice {
            id: DeviceId::try_from(name).unwrap(),
            kind: DeviceKind::Button,
            room: Label::new("B-204").unwrap(),
            press_map: None,
        };
        store
            .add_device(&device, t, t, t, Ok::<_, StoreError>)
            .unwrap()
    }

    #[test]
    fn integrations_share_the_serial_sequence_and_the_crl_with_devices() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir);
        let device = add_device(&mut store, "btn-1");
        let strobe = add(&mut store, "strobes").unwrap();
        let failed: Result<(), StoreError> = store.add_integration(
            &id("pa"),
            UnixMillis::new(1),
            UnixMillis::new(1),
            UnixMillis::new(1),
            |_| Err(StoreError::Corrupt("simulated".into())),
        );
        assert!(failed.is_err());
        let signage = add(&mut store, "signage").unwrap();
        let camera = add_device(&mut store, "cam-1");
        assert!(device < strobe && strobe < signage && signage < camera);
        assert!(matches!(
            add(&mut store, "strobes"),
            Err(StoreError::IntegrationExists(_))
        ));
        // An integration may have a device's name: the namespaces are separate.
        add(&mut store, "btn-1").unwrap();

        let now = UnixMillis::new(9_000);
        store
            .revoke_device(&DeviceId::try_from("btn-1").unwrap(), now, |_| {
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let update = store
            .revoke_integration(&id("strobes"), now, |u| Ok::<_, StoreError>(u.clone()))
            .unwrap();
        assert_eq!(update.newly_revoked, vec![strobe]);
        let serials: Vec<u64> = update.revoked.iter().map(|r| r.serial).collect();
        assert_eq!(serials, vec![device, strobe], "one CRL for both");
        assert!(matches!(
            store.revoke_integration(&id("strobes"), now, |_| Ok::<_, StoreError>(())),
            Err(StoreError::IntegrationAlreadyRevoked(_))
        ));
        assert!(matches!(
            store.revoke_integration(&id("nope"), now, |_| Ok::<_, StoreError>(())),
            Err(StoreError::UnknownIntegration(_))
        ));

        let listed: Vec<(String, IntegrationState, u64)> = store
            .list_integrations()
            .unwrap()
            .into_iter()
            .map(|i| (i.id.to_string(), i.state, i.serial))
            .collect();
        assert_eq!(listed.len(), 3);
        assert_eq!(
            listed[1],
            ("signage".into(), IntegrationState::Active, signage)
        );
        assert_eq!(
            listed[2],
            ("strobes".into(), IntegrationState::Revoked, strobe)
        );
        assert_eq!(store.list_devices().unwrap().len(), 2);
    }

    /// A database created before integrations existed keeps its serial sequence through the
    /// `certificates` rebuild, even when its highest serial's row is gone.
    #[test]
    fn the_certificates_rebuild_keeps_the_serial_high_water_mark() {
        use rusqlite::Connection;
        let mut conn = Connection::open_in_memory().unwrap();
        let v1 = include_str!("../../../migrations/edge/0001_devices.sql");
        let v2 = include_str!("../../../migrations/edge/0002_core.sql");
        conn.execute_batch(v1).unwrap();
        conn.execute_batch(v2).unwrap();
        conn.execute_batch(
            "INSERT INTO certificates (role, not_before, not_after) VALUES ('ca', 0, 1), \
             ('server', 0, 1), ('server', 0, 1); \
             DELETE FROM certificates WHERE serial = 3; \
             PRAGMA user_version = 2;",
        )
        .unwrap();
        super::super::migrate::apply(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO certificates (role, not_before, not_after) VALUES ('server', 0, 1)",
            [],
        )
        .unwrap();
        assert_eq!(
            conn.last_insert_rowid(),
            4,
            "serial 3 is never issued again"
        );
        let roles: Vec<String> = conn
            .prepare("SELECT role FROM certificates ORDER BY serial")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(roles, ["ca", "server", "server"]);
        // The rebuilt table still refuses a device certificate without its device.
        assert!(
            conn.execute(
                "INSERT INTO certificates (role, not_before, not_after) VALUES ('device', 0, 1)",
                [],
            )
            .is_err()
        );
        assert!(
            conn.execute(
                "INSERT INTO certificates (role, not_before, not_after) \
                 VALUES ('integration', 0, 1)",
                [],
            )
            .is_err()
        );
    }
}
