//! Row-level security: the application role sees nothing without a scope, and exactly its
//! schools with one. Tables are read from the catalog, so a new table the role can read but
//! that lacks forced row-level security (or seed rows here) fails this test.

mod common;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

/// Tables the application role may read without a tenant scope, and why.
const GLOBAL_TABLES: &[(&str, &str)] = &[
    ("organizations", "names only; Citus reference table"),
    ("regions", "names only; Citus reference table"),
    ("users", "login looks a user up before any scope exists"),
    (
        "refresh_tokens",
        "a refresh presents only the token; its hash finds the user before any scope exists",
    ),
];

/// One row of every school-owned table, for two schools, written as the superuser.
const SEED: &str = "
INSERT INTO organizations VALUES ('org', 'Org');
INSERT INTO regions VALUES ('north', 'org', 'North');
INSERT INTO users (user_id, email, password_hash)
  VALUES ('00000000-0000-4000-8000-000000000001', 'a@example.org', 'x');
DO $$ DECLARE s text; BEGIN FOREACH s IN ARRAY ARRAY['school-a', 'school-b'] LOOP
  INSERT INTO schools VALUES (s, 'north', s);
  INSERT INTO buildings VALUES (s, gen_random_uuid(), 'Main');
  INSERT INTO floors SELECT s, gen_random_uuid(), building_id, 0, 'Ground' FROM buildings WHERE school_id = s;
  INSERT INTO rooms SELECT s, gen_random_uuid(), floor_id, '101', 'Lab', 30 FROM floors WHERE school_id = s;
  INSERT INTO enrollment_tokens (school_id, token_hash, expires_at) VALUES (s, sha256(s::bytea), now());
  INSERT INTO gateways (school_id, gateway_id, cert_serial) VALUES (s, 'gw-1', '01');
  INSERT INTO sync_cursors (school_id, gateway_id, epoch, lane, last_seq) VALUES (s, 'gw-1', 7, 'alert', 2);
  INSERT INTO gateway_events (school_id, gateway_id, state, last_sync_at) VALUES (s, 'gw-1', 'offline', now());
  INSERT INTO devices VALUES (s, 'btn-1', 'gw-1', 'online', 3000, -50, 0, 1, 7);
  INSERT INTO alerts VALUES (s, gen_random_uuid(), 'gw-1', 'panic', 'high', 'triggered', 'btn-1', '101', 1, 0, 0, 2, 7);
  INSERT INTO alert_events SELECT s, 'gw-1', 2, alert_id, 0, 'triggered', 'triggered', 'high', 'device', 'btn-1', 7 FROM alerts WHERE school_id = s;
  INSERT INTO gateway_commands (school_id, command_id, gateway_id, kind, alert_id, requested_by)
    SELECT s, gen_random_uuid(), 'gw-1', 'acknowledge', alert_id, 'ops' FROM alerts WHERE school_id = s;
  INSERT INTO alert_notes (school_id, alert_id, note_id, author, body)
    SELECT s, alert_id, gen_random_uuid(), 'user:x', 'Checked.' FROM alerts WHERE school_id = s;
  INSERT INTO snapshots VALUES (s, 'gw-1', 3, now(), 10, 9, 1, 2, 1, 5, 0, 7);
  INSERT INTO role_grants VALUES ('00000000-0000-4000-8000-000000000001', 'viewer', NULL, s);
  INSERT INTO audit_log (school_id, actor, action, outcome) VALUES (s, 'test', 'seed', 'ok');
END LOOP; END $$;
INSERT INTO audit_log (school_id, actor, action, outcome) VALUES (NULL, 'test', 'platform', 'ok');
";

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn without_a_scope_the_app_role_reads_nothing(_: PgPoolOptions, opts: PgConnectOptions) {
    let owner = PgPool::connect_with(opts.clone()).await.unwrap();
    owner.execute(SEED).await.unwrap();
    let app = common::app_pool(&opts).await;

    let tables = readable_tables(&owner).await;
    assert!(tables.len() >= 15, "{tables:?}");
    for (table, rls, forced) in tables.iter().cloned() {
        if GLOBAL_TABLES.iter().any(|(t, _)| *t == table) {
            continue;
        }
        assert!(
            rls && forced,
            "{table}: row-level security must be enabled and forced"
        );
        let seeded = count(&owner, &table, None).await;
        assert!(
            seeded > 0,
            "{table}: add a row to SEED so this test covers it"
        );
        assert_eq!(
            count(&app, &table, None).await,
            0,
            "{table} leaked without a scope"
        );
        // A scope that is set but empty is no scope either.
        assert_eq!(
            count(&app, &table, Some("")).await,
            0,
            "{table} leaked to ''"
        );
    }
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_scope_shows_exactly_its_schools(_: PgPoolOptions, opts: PgConnectOptions) {
    let owner = PgPool::connect_with(opts.clone()).await.unwrap();
    owner.execute(SEED).await.unwrap();
    let app = common::app_pool(&opts).await;
    for (table, ..) in readable_tables(&owner).await {
        if GLOBAL_TABLES.iter().any(|(t, _)| *t == table) || table == "audit_log" {
            continue;
        }
        let both = count(&owner, &table, None).await;
        assert_eq!(
            count(&app, &table, Some("school-a")).await * 2,
            both,
            "{table}"
        );
        assert_eq!(
            count(&app, &table, Some("school-a,school-b")).await,
            both,
            "{table}"
        );
        assert_eq!(count(&app, &table, Some("school-c")).await, 0, "{table}");
    }
    // Platform audit rows (no school) are for operators only.
    assert_eq!(count(&app, "audit_log", Some("school-a")).await, 1);

    // Writing outside the scope is refused, not silently redirected.
    let mut tx = app.begin().await.unwrap();
    tx.execute("SELECT set_config('hallwatch.school_ids', 'school-a', true)")
        .await
        .unwrap();
    let err = tx
        .execute(
            "INSERT INTO devices VALUES ('school-b', 'x', 'gw-1', 'online', NULL, NULL, 0, 1, 7)",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn the_app_role_is_not_privileged(_: PgPoolOptions, opts: PgConnectOptions) {
    let app = common::app_pool(&opts).await;
    cloud_sync::db::ensure_unprivileged(&app).await.unwrap();
    let owner = PgPool::connect_with(opts).await.unwrap();
    let err = cloud_sync::db::ensure_unprivileged(&owner)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("hallwatch_app"), "{err}");
    // Partitions are not readable around the parent's policies.
    let err = app
        .execute("SELECT * FROM snapshots_default")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
}

/// Every table and partitioned table in `public` the app role can SELECT, with its
/// row-level-security flags.
async fn readable_tables(owner: &PgPool) -> Vec<(String, bool, bool)> {
    sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
           AND has_table_privilege('hallwatch_app', c.oid, 'SELECT') ORDER BY 1",
    )
    .fetch_all(owner)
    .await
    .expect("query")
}

/// Rows of `table` visible in a transaction that set `school_ids` (or no scope at all).
async fn count(pool: &PgPool, table: &str, school_ids: Option<&str>) -> i64 {
    let mut tx = pool.begin().await.expect("query");
    if let Some(ids) = school_ids {
        sqlx::query("SELECT set_config('hallwatch.school_ids', $1, true)")
            .bind(ids)
            .execute(&mut *tx)
            .await
            .expect("query");
    }
    let sql = format!("SELECT count(*) FROM {table}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut *tx)
        .await
        .expect("query")
}
