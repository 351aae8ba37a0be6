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
    (
        "0004_sync",
        include_str!("../../../migrations/edge/0004_sync.sql"),
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

    #[test]
    fn the_sync_migration_numbers_each_lane_from_one_under_one_epoch() {
        let mut conn = Connection::open_in_memory().unwrap();
        for (_, sql) in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 3").unwrap();
        // Bodies as postcard writes them: the first byte is the variant (0 alert event,
        // 1 health, 2 snapshot, 3 command result); the rest does not matter here.
        for (lane, body) in [
            ("telemetry", 2u8),
            ("alert", 0),
            ("telemetry", 1),
            ("alert", 3),
            ("telemetry", 2),
        ] {
            conn.execute(
                "INSERT INTO outbox (lane, at, body) VALUES (?1, 5, ?2)",
                (lane, vec![body, 9, 9]),
            )
            .unwrap();
        }
        apply(&mut conn).unwrap();
        let rows: Vec<(String, i64, String)> = conn
            .prepare("SELECT lane, seq, kind FROM outbox ORDER BY lane, seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expect = [
            ("alert", 1, "alert_event"),
            ("alert", 2, "command_result"),
            ("telemetry", 1, "snapshot"),
            ("telemetry", 2, "device_health"),
            ("telemetry", 3, "snapshot"),
        ];
        let rows: Vec<(&str, i64, &str)> = rows
            .iter()
            .map(|(l, s, k)| (l.as_str(), *s, k.as_str()))
            .collect();
        assert_eq!(rows, expect);
        let heads: Vec<(String, i64)> = conn
            .prepare("SELECT lane, head FROM outbox_lanes ORDER BY lane")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            heads,
            [("alert".to_owned(), 2), ("telemetry".to_owned(), 3)]
        );
        let epochs: i64 = conn
            .query_row(
                "SELECT count(DISTINCT epoch) FROM outbox WHERE epoch <> 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(epochs, 1);
    }
}
