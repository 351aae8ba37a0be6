//! The edge schema's migrations, embedded from `migrations/edge/` and tracked with
//! `PRAGMA user_version` (the number of migrations applied).

use rusqlite::Connection;

use super::StoreError;

/// Every migration, in order. Append only: an applied migration is never edited.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_devices",
        include_str!("../../../migrations/edge/0001_devices.sql"),
    ),
    (
        "0002_core",
        include_str!("../../../migrations/edge/0002_core.sql"),
    ),
    (
        "0003_integrations",
        include_str!("../../../migrations/edge/0003_integrations.sql"),
    ),
];

/// Applies every migration newer than the database, each in its own transaction.
pub(super) fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let known = MIGRATIONS.len();
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > known {
        return Err(StoreError::NewerSchema { applied, known });
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        // `user_version` cannot be bound as a parameter; `index + 1` is our own number.
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
        tx.commit()?;
        tracing::info!(migration = name, "applied edge migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_once_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn).unwrap();
        apply(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        assert!(matches!(
            apply(&mut conn),
            Err(StoreError::NewerSchema { applied: 99, .. })
        ));
    }
}
