//! Login, refresh and logout over HTTP against a running cloud: the answers, the rotation of
//! refresh tokens and their families, the rate limits and the audit trail.

mod common;

use std::time::Duration;

use cloud_sync::auth::Grant;
use cloud_sync::db;
use cloud_sync::{LoginLimits, Quota};
use common::people::{PASSWORD, error_code, tokens};
use common::{Options, TestCloud};
use reqwest::StatusCode;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

async fn audit(cloud: &TestCloud, action: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT actor, outcome FROM audit_log WHERE action = $1 ORDER BY audit_id")
        .bind(action)
        .fetch_all(&cloud.owner)
        .await
        .expect("audit rows")
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn login_answers_a_token_pair_and_refuses_everything_else_alike(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let ann = cloud.user("ann@example.org", Grant::Superadmin).await;
    let dan = cloud.user("dan@example.org", Grant::Superadmin).await;
    sqlx::query("UPDATE users SET disabled_at = now() WHERE user_id = $1")
        .bind(dan)
        .execute(&cloud.owner)
        .await
        .unwrap();

    // The address is case-insensitive; the answer is RFC 6749's shape.
    let ok = cloud.login("Ann@Example.org", PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let pair = tokens(ok).await;
    assert!(pair.refresh.starts_with("hwr_") && pair.refresh.len() == 68);
    assert_eq!(cloud.me(&pair.access).await.status(), StatusCode::OK);

    // Wrong password, unknown user, disabled user, an address that cannot exist: one answer.
    let mut answers = Vec::new();
    for (email, password) in [
        ("ann@example.org", "wrong password here"),
        ("nobody@example.org", PASSWORD),
        ("dan@example.org", PASSWORD),
        ("not an address", PASSWORD),
    ] {
        let response = cloud.login(email, password).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{email}");
        answers.push(response.text().await.unwrap());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert!(answers[0].contains("invalid_credentials"), "{}", answers[0]);

    // Every attempt is audited, with who it was when known.
    let logins = audit(&cloud, "login").await;
    let expected = [
        (format!("user:{ann}"), "ok"),
        (format!("user:{ann}"), "wrong_password"),
        ("anonymous".to_owned(), "unknown_user"),
        (format!("user:{dan}"), "disabled"),
        ("anonymous".to_owned(), "unknown_user"),
    ];
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(a, o)| (a, o.to_owned()))
        .collect();
    assert_eq!(logins, expected);

    // Malformed bodies are 400, not 401 or 500.
    let response = reqwest::Client::new()
        .post(cloud.url("/api/v1/auth/login"))
        .body("{\"email\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_disabled_user_can_neither_refresh_nor_use_an_access_token(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let ann = cloud.user("ann@example.org", Grant::Superadmin).await;
    let pair = cloud.logged_in("ann@example.org").await;
    sqlx::query("UPDATE users SET disabled_at = now() WHERE user_id = $1")
        .bind(ann)
        .execute(&cloud.owner)
        .await
        .unwrap();
    let me = cloud.me(&pair.access).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(me).await, "invalid_token");
    let refreshed = cloud.refresh(&pair.refresh).await;
    assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(refreshed).await, "invalid_refresh_token");
    // Its family is revoked, so enabling the account again does not revive the session.
    let revoked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NOT NULL",
    )
    .bind(ann)
    .fetch_one(&cloud.owner)
    .await
    .unwrap();
    assert_eq!(revoked, 1);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn refresh_rotates_and_a_reused_token_revokes_its_whole_family(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let ann = cloud.user("ann@example.org", Grant::Superadmin).await;
    let first = cloud.logged_in("ann@example.org").await;
    let other_session = cloud.logged_in("ann@example.org").await;

    let second = tokens(cloud.refresh(&first.refresh).await).await;
    assert_ne!(second.refresh, first.refresh);
    let third = tokens(cloud.refresh(&second.refresh).await).await;
    assert_eq!(cloud.me(&third.access).await.status(), StatusCode::OK);

    // Only hashes are stored.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind(&third.refresh)
    .fetch_one(&cloud.owner)
    .await
    .unwrap();
    assert_eq!(stored, 1);

    // The first token was spent: presenting it again is a copy in someone else's hands.
    let reused = cloud.refresh(&first.refresh).await;
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(reused).await, "invalid_refresh_token");
    // The newest token of the family is refused too...
    assert_eq!(
        cloud.refresh(&third.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // ...and the other login's family is untouched.
    assert_eq!(
        cloud.refresh(&other_session.refresh).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        audit(&cloud, "refresh_reuse").await,
        [(format!("user:{ann}"), "family_revoked".to_owned())]
    );

    // Unknown and malformed tokens are plain refusals.
    assert_eq!(
        cloud.refresh("hwr_00").await.status(),
        StatusCode::UNAUTHORIZED
    );
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn an_expired_refresh_token_is_refused(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    cloud.user("ann@example.org", Grant::Superadmin).await;
    let pair = cloud.logged_in("ann@example.org").await;
    sqlx::query("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
        .execute(&cloud.owner)
        .await
        .unwrap();
    assert_eq!(
        cloud.refresh(&pair.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // `admin prune` deletes tokens a day past their expiry, not before.
    assert_eq!(
        db::accounts::prune_refresh_tokens(&cloud.owner)
            .await
            .unwrap(),
        0
    );
    sqlx::query("UPDATE refresh_tokens SET expires_at = now() - interval '25 hours'")
        .execute(&cloud.owner)
        .await
        .unwrap();
    assert_eq!(
        db::accounts::prune_refresh_tokens(&cloud.owner)
            .await
            .unwrap(),
        1
    );
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn logout_revokes_the_family(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let ann = cloud.user("ann@example.org", Grant::Superadmin).await;
    let first = cloud.logged_in("ann@example.org").await;
    let second = tokens(cloud.refresh(&first.refresh).await).await;

    assert_eq!(
        cloud.logout(&second.refresh).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        cloud.refresh(&second.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Logging out twice, or with a token nobody issued, is not an error.
    assert_eq!(
        cloud.logout(&second.refresh).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(cloud.logout("hwr_x").await.status(), StatusCode::NO_CONTENT);
    let logouts = audit(&cloud, "logout").await;
    assert_eq!(logouts.len(), 2, "{logouts:?}");
    assert!(
        logouts
            .iter()
            .all(|(actor, _)| *actor == format!("user:{ann}"))
    );
    // Spent and revoked, the token is not a reuse: no second audit of that kind.
    assert!(audit(&cloud, "refresh_reuse").await.is_empty());
    cloud.stop().await;
}

fn limits(account: u32, source: u32) -> Options {
    let every = Duration::from_secs(3600);
    Options {
        login_limits: LoginLimits {
            per_account: Quota {
                burst: account,
                every,
            },
            per_source: Quota {
                burst: source,
                every,
            },
        },
        ..Options::default()
    }
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After in seconds")
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn login_attempts_are_limited_per_account(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start_with(&opts, limits(3, 100)).await;
    cloud.user("ann@example.org", Grant::Superadmin).await;
    cloud.user("bob@example.org", Grant::Superadmin).await;
    for _ in 0..3 {
        let response = cloud.login("ann@example.org", "wrong password here").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // The right password waits too: the budget is the account's, whatever is tried.
    let limited = cloud.login("ANN@example.org", PASSWORD).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&limited);
    assert!((3000..=3600).contains(&wait), "{wait}");
    assert_eq!(error_code(limited).await, "rate_limited");
    // Another account from the same place is not held up.
    assert_eq!(
        cloud.login("bob@example.org", PASSWORD).await.status(),
        StatusCode::OK
    );
    let limited: Vec<(String, String)> = sqlx::query_as(
        "SELECT outcome, detail->>'limited_by' FROM audit_log \
         WHERE action = 'login' AND outcome = 'rate_limited'",
    )
    .fetch_all(&cloud.owner)
    .await
    .unwrap();
    assert_eq!(limited, [("rate_limited".to_owned(), "account".to_owned())]);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn login_attempts_are_limited_per_source(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start_with(&opts, limits(100, 3)).await;
    cloud.user("ann@example.org", Grant::Superadmin).await;
    for who in ["x@example.org", "y@example.org", "z@example.org"] {
        assert_eq!(
            cloud.login(who, PASSWORD).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // The source (127.0.0.1, the connection's peer) has spent its budget, for every account.
    let limited = cloud.login("ann@example.org", PASSWORD).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&limited) >= 3000);
    // A forged X-Forwarded-For does not buy a new budget: no proxy is trusted here.
    let forged = reqwest::Client::new()
        .post(cloud.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "203.0.113.77")
        .json(&serde_json::json!({ "email": "ann@example.org", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS);
    let sources: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT detail->>'source' FROM audit_log WHERE action = 'login'",
    )
    .fetch_all(&cloud.owner)
    .await
    .unwrap();
    assert_eq!(sources, ["127.0.0.1"]);
    cloud.stop().await;
}
