//! The admin commands' library side: regions, schools and their one-time tokens.

mod common;

use std::time::Duration;

use cloud_sync::db::{self, DbError};
use cloud_sync::pki::TokenHash;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn create_school_stores_only_the_token_hash_with_an_expiry(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Admin commands connect as the schema owner, like `migrate`.
    let owner = PgPool::connect_with(opts.clone()).await.unwrap();
    let region = "north".parse().unwrap();
    let school = "lincoln-high".parse().unwrap();
    db::admin::create_region(&owner, &region, "North")
        .await
        .unwrap();
    let token = db::admin::create_school(
        &owner,
        &region,
        &school,
        "Lincoln",
        Duration::from_secs(3600),
    )
    .await
    .unwrap();

    let (hash, ttl_secs, used): (Vec<u8>, f64, bool) = sqlx::query_as(
        "SELECT token_hash, extract(epoch FROM expires_at - created_at)::float8, \
         used_at IS NOT NULL FROM enrollment_tokens",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(hash, TokenHash::of(token.as_str()).0);
    assert!((ttl_secs - 3600.0).abs() < 5.0, "{ttl_secs}");
    assert!(!used);
    let stored_text: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM enrollment_tokens WHERE encode(token_hash, 'escape') LIKE '%hwe_%'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(stored_text, 0);

    let audited: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log ORDER BY audit_id")
        .fetch_all(&owner)
        .await
        .unwrap();
    assert_eq!(audited, ["create_region", "create_school"]);

    // Another token for the same school is a different token.
    let second = db::admin::create_enrollment_token(&owner, &school, Duration::from_secs(60))
        .await
        .unwrap();
    assert_ne!(second.as_str(), token.as_str());
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn refuses_duplicates_and_unknown_regions(_: PgPoolOptions, opts: PgConnectOptions) {
    let app = PgPool::connect_with(opts).await.unwrap();
    let region = "north".parse().unwrap();
    let school = "lincoln-high".parse().unwrap();
    let day = Duration::from_secs(86_400);
    db::admin::create_region(&app, &region, "North")
        .await
        .unwrap();
    assert!(matches!(
        db::admin::create_region(&app, &region, "Again").await,
        Err(DbError::Conflict(_))
    ));
    let nowhere = "nowhere".parse().unwrap();
    assert!(matches!(
        db::admin::create_school(&app, &nowhere, &school, "L", day).await,
        Err(DbError::NotFound(_))
    ));
    db::admin::create_school(&app, &region, &school, "L", day)
        .await
        .unwrap();
    assert!(matches!(
        db::admin::create_school(&app, &region, &school, "L", day).await,
        Err(DbError::Conflict(_))
    ));
    let unknown = "unknown".parse().unwrap();
    assert!(matches!(
        db::admin::create_enrollment_token(&app, &unknown, day).await,
        Err(DbError::NotFound(_))
    ));
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn snapshot_partitions_are_created_ahead_and_pruned(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let owner = PgPool::connect_with(opts.clone()).await.unwrap();
    let app = common::app_pool(&opts).await;
    let months = || async {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'snapshots'::regclass ORDER BY 1",
        )
        .fetch_all(&owner)
        .await
        .unwrap();
        names
    };
    // The migration made this month and three ahead, plus the default partition.
    assert_eq!(months().await.len(), 5);
    assert_eq!(
        db::admin::ensure_snapshot_partitions(&app, 6)
            .await
            .unwrap(),
        3
    );
    // An old month, as if the service had run for years.
    sqlx::query(
        "CREATE TABLE snapshots_2001_01 PARTITION OF snapshots \
         FOR VALUES FROM ('2001-01-01 00:00Z') TO ('2001-02-01 00:00Z')",
    )
    .execute(&owner)
    .await
    .unwrap();
    assert_eq!(db::admin::prune_snapshots(&app, 13).await.unwrap(), 1);
    let left = months().await;
    assert!(!left.contains(&"snapshots_2001_01".to_owned()), "{left:?}");
    assert_eq!(left.len(), 8);
}
