//! The scope each role gets, through `GET /api/v1/me` (the first route behind the `Caller`
//! extractor) and through `db::begin` with a caller's scope: exactly the schools granted,
//! and nothing written by a viewer.

mod common;

use cloud_sync::auth::Grant;
use cloud_sync::db::{self, Reach};
use common::TestCloud;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn me_shows_each_role_its_schools(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    // Region north (made by TestCloud) has two schools, south one.
    cloud.school("north-a").await;
    cloud.school("north-b").await;
    let south = "south".parse().unwrap();
    db::admin::create_region(&cloud.owner, &south, "South")
        .await
        .unwrap();
    db::admin::create_school(
        &cloud.owner,
        &south,
        &"south-a".parse().unwrap(),
        "South A",
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();

    let cases = [
        (
            "super@example.org",
            Grant::Superadmin,
            json!({ "role": "superadmin", "region_id": null, "school_id": null }),
            json!({ "all_schools": true, "read_only": false,
                    "schools": ["north-a", "north-b", "south-a"] }),
        ),
        (
            "region@example.org",
            Grant::RegionAdmin("north".parse().unwrap()),
            json!({ "role": "region_admin", "region_id": "north", "school_id": null }),
            json!({ "all_schools": false, "read_only": false,
                    "schools": ["north-a", "north-b"] }),
        ),
        (
            "school@example.org",
            Grant::SchoolAdmin("north-a".parse().unwrap()),
            json!({ "role": "school_admin", "region_id": null, "school_id": "north-a" }),
            json!({ "all_schools": false, "read_only": false, "schools": ["north-a"] }),
        ),
        (
            "viewer@example.org",
            Grant::Viewer("north-b".parse().unwrap()),
            json!({ "role": "viewer", "region_id": null, "school_id": "north-b" }),
            json!({ "all_schools": false, "read_only": true, "schools": ["north-b"] }),
        ),
    ];
    for (email, grant, role, scope) in cases {
        let user = cloud.user(email, grant).await;
        let pair = cloud.logged_in(email).await;
        let response = cloud.me(&pair.access).await;
        assert_eq!(response.status(), StatusCode::OK, "{email}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["user_id"], user.to_string(), "{email}");
        assert_eq!(body["email"], email);
        assert_eq!(body["roles"], json!([role]), "{email}");
        assert_eq!(body["scope"], scope, "{email}");
    }

    // A school added to north later is in the region admin's scope at their next request.
    cloud.school("north-c").await;
    let pair = cloud.logged_in("region@example.org").await;
    let body: Value = cloud.me(&pair.access).await.json().await.unwrap();
    assert_eq!(
        body["scope"]["schools"],
        json!(["north-a", "north-b", "north-c"])
    );
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_callers_scope_binds_row_level_security_and_a_viewer_cannot_write(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    cloud.school("north-a").await;
    cloud.school("north-b").await;
    let admin = cloud
        .user(
            "admin@example.org",
            Grant::SchoolAdmin("north-a".parse().unwrap()),
        )
        .await;
    let viewer = cloud
        .user(
            "viewer@example.org",
            Grant::Viewer("north-a".parse().unwrap()),
        )
        .await;
    let app = common::app_pool(&opts).await;

    let admin = db::accounts::load_caller(&app, admin)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        admin.scope.reach,
        Reach::Schools(vec!["north-a".parse().unwrap()])
    );
    let mut tx = db::begin(&app, &admin.scope).await.unwrap();
    let visible: Vec<String> = sqlx::query_scalar("SELECT school_id FROM enrollment_tokens")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(visible, ["north-a"]);
    tx.execute("UPDATE schools SET name = 'Renamed' WHERE school_id = 'north-a'")
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    // The viewer's transactions are READ ONLY: Postgres refuses the write itself.
    let viewer = db::accounts::load_caller(&app, viewer)
        .await
        .unwrap()
        .unwrap();
    assert!(viewer.scope.read_only);
    let mut tx = db::begin(&app, &viewer.scope).await.unwrap();
    let err = tx
        .execute("UPDATE schools SET name = 'Renamed' WHERE school_id = 'north-a'")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only transaction"), "{err}");
    cloud.stop().await;
}
