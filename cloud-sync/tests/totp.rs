//! Two-factor sign-in (TOTP) over HTTP against a running cloud, and the operator's
//! `cloud-sync admin reset-totp` as the real binary: enrolment, login with a code, replay,
//! the rate limits, every refusal, and the audit trail. Codes are computed here from the
//! secret the server hands out, as an authenticator app would.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use cloud_sync::auth::{Grant, TotpSecret, step_at};
use cloud_sync::{LoginLimits, Quota};
use common::people::{PASSWORD, error_code, tokens};
use common::{Options, TestCloud};
use data_encoding::BASE32_NOPAD;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

fn generous() -> Options {
    let quota = Quota {
        burst: 1000,
        every: Duration::from_millis(10),
    };
    Options {
        login_limits: LoginLimits {
            per_account: quota,
            per_source: quota,
        },
        ..Options::default()
    }
}

/// The code of the time step `offset` steps from now.
fn code(secret: &TotpSecret, offset: i64) -> String {
    let step = step_at(SystemTime::now())
        .checked_add_signed(offset)
        .unwrap();
    format!("{:06}", secret.code_at_step(step, 6))
}

/// Waits, when fewer than 15 s of the current time step remain, for the next step to begin:
/// the steps after this call then see the same step, so which codes the server accepts
/// (this step and one either side) is known however the test is scheduled.
async fn at_a_fresh_step() {
    let into = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 30_000;
    if into > 15_000 {
        tokio::time::sleep(Duration::from_millis(30_000 - into as u64 + 50)).await;
    }
}

async fn post(cloud: &TestCloud, path: &str, access: &str, body: Option<Value>) -> Response {
    let mut request = reqwest::Client::new()
        .post(cloud.url(path))
        .bearer_auth(access);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn login_with(cloud: &TestCloud, email: &str, password: &str, code: &str) -> Response {
    reqwest::Client::new()
        .post(cloud.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password, "totp_code": code }))
        .send()
        .await
        .unwrap()
}

/// Starts an enrolment and returns the secret it handed out (checking the answer's shape).
async fn start(cloud: &TestCloud, access: &str) -> TotpSecret {
    let response = post(cloud, "/api/v1/me/totp", access, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits of base32");
    assert_eq!(
        body["secret_grouped"].as_str().unwrap().replace(' ', ""),
        secret
    );
    assert_eq!(body["state"], "pending");
    assert_eq!(
        (body["digits"].as_u64(), body["period"].as_u64()),
        (Some(6), Some(30))
    );
    let uri = body["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Hallwatch:") && uri.contains(&format!("secret={secret}&")),
        "{uri}"
    );
    TotpSecret::from_bytes(&BASE32_NOPAD.decode(secret.as_bytes()).unwrap()).unwrap()
}

/// Starts an enrolment and confirms it with the current code: two-factor sign-in is on.
async fn turn_on(cloud: &TestCloud, access: &str) -> TotpSecret {
    let secret = start(cloud, access).await;
    let body = json!({ "code": code(&secret, 0) });
    let r = post(cloud, "/api/v1/me/totp/confirm", access, Some(body)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    secret
}

async fn me_totp(cloud: &TestCloud, access: &str) -> String {
    let me: Value = cloud.me(access).await.json().await.unwrap();
    me["totp"].as_str().unwrap().to_owned()
}

async fn audit(cloud: &TestCloud, actions: &[&str]) -> Vec<(String, String)> {
    let actions: Vec<String> = actions.iter().map(|a| (*a).to_owned()).collect();
    sqlx::query_as("SELECT action, outcome FROM audit_log WHERE action = ANY($1) ORDER BY audit_id")
        .bind(&actions)
        .fetch_all(&cloud.owner)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn enrol_then_every_login_needs_a_fresh_code_until_disabled(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start_with(&opts, generous()).await;
    let ann = cloud.user("ann@example.org", Grant::Superadmin).await;
    let session = cloud.logged_in("ann@example.org").await;
    assert_eq!(me_totp(&cloud, &session.access).await, "off");

    // A started enrolment is pending: login does not ask for a code yet.
    let first = start(&cloud, &session.access).await;
    assert_eq!(me_totp(&cloud, &session.access).await, "pending");
    cloud.logged_in("ann@example.org").await;
    // Starting again replaces the pending secret; the first one no longer confirms.
    let secret = start(&cloud, &session.access).await;
    assert_ne!(first, secret);
    let stale = post(
        &cloud,
        "/api/v1/me/totp/confirm",
        &session.access,
        Some(json!({ "code": code(&first, 0) })),
    )
    .await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(stale).await, "wrong_code");

    // The secret is stored sealed: its bytes are not in the row.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT totp_secret FROM users WHERE user_id = $1")
        .bind(ann)
        .fetch_one(&cloud.owner)
        .await
        .unwrap();
    assert!(!stored.windows(20).any(|w| w == secret.as_bytes()));

    // A code of the previous step (clock drift) confirms it, shown as "123 456". From here
    // to the replay of that code, the step must not change.
    at_a_fresh_step().await;
    let previous = code(&secret, -1);
    let spaced = format!("{} {}", &previous[..3], &previous[3..]);
    let confirmed = post(
        &cloud,
        "/api/v1/me/totp/confirm",
        &session.access,
        Some(json!({ "code": spaced })),
    )
    .await;
    assert_eq!(confirmed.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_totp(&cloud, &session.access).await, "active");

    // The right password alone: a distinct 401 that asks for the code.
    let asked = cloud.login("ann@example.org", PASSWORD).await;
    assert_eq!(asked.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(asked).await, "totp_required");
    // The code that confirmed cannot sign in.
    let replayed = login_with(&cloud, "ann@example.org", PASSWORD, &previous).await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(replayed).await, "wrong_code");
    // A wrong code is refused.
    let wrong = format!(
        "{:06}",
        (code(&secret, 0).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let refused = login_with(&cloud, "ann@example.org", PASSWORD, &wrong).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(refused).await, "wrong_code");
    // The current code signs in, once.
    let current = code(&secret, 0);
    let pair = tokens(login_with(&cloud, "ann@example.org", PASSWORD, &current).await).await;
    assert_eq!(cloud.me(&pair.access).await.status(), StatusCode::OK);
    let again = login_with(&cloud, "ann@example.org", PASSWORD, &current).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(again).await, "wrong_code");
    // Refreshing a session needs no code (the session was proved at login).
    assert_eq!(cloud.refresh(&pair.refresh).await.status(), StatusCode::OK);

    // Disabling needs the password and a code not used before.
    let disabled = post(
        &cloud,
        "/api/v1/me/totp/disable",
        &pair.access,
        Some(json!({ "password": PASSWORD, "code": code(&secret, 1) })),
    )
    .await;
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_totp(&cloud, &pair.access).await, "off");
    cloud.logged_in("ann@example.org").await;
    let cleared: (Option<Vec<u8>>, Option<i64>) =
        sqlx::query_as("SELECT totp_secret, totp_last_step FROM users WHERE user_id = $1")
            .bind(ann)
            .fetch_one(&cloud.owner)
            .await
            .unwrap();
    assert_eq!(cleared, (None, None));

    let trail = audit(
        &cloud,
        &["totp_start", "totp_enable", "totp_disable", "login"],
    )
    .await;
    let trail: Vec<(&str, &str)> = trail
        .iter()
        .map(|(a, o)| (a.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        trail,
        [
            ("login", "ok"),
            ("totp_start", "ok"),
            ("login", "ok"),
            ("totp_start", "ok"),
            ("totp_enable", "wrong_code"),
            ("totp_enable", "ok"),
            ("login", "totp_required"),
            ("login", "totp_replay"),
            ("login", "wrong_totp"),
            ("login", "ok"),
            ("login", "totp_replay"),
            ("totp_disable", "ok"),
            ("login", "ok"),
        ]
    );
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn every_refusal_names_its_reason_and_reveals_nothing_to_a_wrong_password(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start_with(&opts, generous()).await;
    cloud.user("bob@example.org", Grant::Superadmin).await;
    let session = cloud.logged_in("bob@example.org").await;
    let access = &session.access;
    let confirm = |body: Value| post(&cloud, "/api/v1/me/totp/confirm", access, Some(body));
    let disable = |body: Value| post(&cloud, "/api/v1/me/totp/disable", access, Some(body));

    // Nothing to confirm or disable yet.
    let r = confirm(json!({ "code": "123456" })).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(r).await, "totp_not_started");
    let r = disable(json!({ "password": PASSWORD, "code": "123456" })).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(r).await, "totp_not_active");

    let secret = start(&cloud, access).await;
    // Malformed codes and bodies: 400, naming the field.
    for bad in [
        "12345",
        "1234567",
        "12a456",
        "",
        "１２３４５６",
        &"1".repeat(100),
    ] {
        let r = confirm(json!({ "code": bad })).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_code", "{bad:?}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("code:")
        );
    }
    for body in [
        json!({}),
        json!({ "code": 123456 }),
        json!({ "code": "123456", "x": 1 }),
    ] {
        let r = confirm(body.clone()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(r).await, "invalid_body", "{body}");
    }
    let r = confirm(json!({ "code": code(&secret, 0) })).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // Active: neither start nor confirm again.
    let r = post(&cloud, "/api/v1/me/totp", access, None).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(r).await, "totp_active");
    let r = confirm(json!({ "code": code(&secret, 1) })).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(r).await, "totp_active");

    // Disable: the wrong password, then the wrong code; too long a password; a bad code.
    let r = disable(json!({ "password": "not the password", "code": code(&secret, 1) })).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r).await, "wrong_password");
    let r = disable(json!({ "password": PASSWORD, "code": code(&secret, -5) })).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r).await, "wrong_code");
    let r = disable(json!({ "password": "x".repeat(1025), "code": "123456" })).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("password:")
    );
    let r = disable(json!({ "password": PASSWORD, "code": "abc" })).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "invalid_code");
    let r = disable(json!({ "password": PASSWORD })).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(me_totp(&cloud, access).await, "active");

    // Login: a wrong password says nothing about a second factor, with or without a code.
    let plain = cloud.login("bob@example.org", "not the password").await;
    assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
    let plain = plain.text().await.unwrap();
    let with_code = login_with(&cloud, "bob@example.org", "not the password", "123456").await;
    assert_eq!(with_code.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(with_code.text().await.unwrap(), plain);
    assert!(plain.contains("invalid_credentials"), "{plain}");
    // A malformed code is 400 before anything is checked.
    let r = login_with(&cloud, "bob@example.org", PASSWORD, "12 34").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "invalid_code");

    // Without a token: 401 on every route.
    for path in [
        "/api/v1/me/totp",
        "/api/v1/me/totp/confirm",
        "/api/v1/me/totp/disable",
    ] {
        let r = reqwest::Client::new()
            .post(cloud.url(path))
            .json(&json!({ "code": "123456", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }

    let refusals = audit(&cloud, &["totp_start", "totp_enable", "totp_disable"]).await;
    let refusals: Vec<(&str, &str)> = refusals
        .iter()
        .map(|(a, o)| (a.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        refusals,
        [
            ("totp_enable", "not_started"),
            ("totp_disable", "not_active"),
            ("totp_start", "ok"),
            ("totp_enable", "ok"),
            ("totp_start", "already_active"),
            ("totp_enable", "already_active"),
            ("totp_disable", "wrong_password"),
            ("totp_disable", "wrong_code"),
        ]
    );
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn wrong_codes_spend_the_accounts_login_budget(_: PgPoolOptions, opts: PgConnectOptions) {
    let quota = |burst| Quota {
        burst,
        every: Duration::from_secs(3600),
    };
    let options = Options {
        login_limits: LoginLimits {
            per_account: quota(4),
            per_source: quota(100),
        },
        ..Options::default()
    };
    let cloud = TestCloud::start_with(&opts, options).await;
    cloud.user("cy@example.org", Grant::Superadmin).await;
    // One attempt: the login.
    let session = cloud.logged_in("cy@example.org").await;
    // Two: confirming.
    let secret = turn_on(&cloud, &session.access).await;
    // Three and four: wrong codes with the right password.
    for _ in 0..2 {
        let r = login_with(&cloud, "cy@example.org", PASSWORD, "000000").await;
        // One in a million: 000000 may be right; then it is still an attempt.
        assert!(r.status() == StatusCode::UNAUTHORIZED || r.status() == StatusCode::OK);
    }
    // The budget is spent: the right code waits too.
    let r = login_with(&cloud, "cy@example.org", PASSWORD, &code(&secret, 1)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    cloud.stop().await;
}

fn owner_url(opts: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap()
    )
}

fn reset_totp(url: &str, email: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloud-sync"))
        .args([
            "admin",
            "reset-totp",
            "--database-url",
            url,
            "--email",
            email,
        ])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn an_operator_resets_a_lost_phone_with_the_real_binary(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start_with(&opts, generous()).await;
    let dee: Uuid = cloud.user("dee@example.org", Grant::Superadmin).await;
    let session = cloud.logged_in("dee@example.org").await;
    turn_on(&cloud, &session.access).await;
    assert_eq!(
        error_code(cloud.login("dee@example.org", PASSWORD).await).await,
        "totp_required"
    );

    let url = owner_url(&opts);
    // Refusals: an address that cannot be one, an unknown one; nothing changes.
    let out = reset_totp(&url, "not an address");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--email"));
    let out = reset_totp(&url, "nobody@example.org");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--email: no account has the address nobody@example.org"),
        "{stderr}"
    );
    assert_eq!(me_totp(&cloud, &session.access).await, "active");

    // The address in any case.
    let out = reset_totp(&url, "Dee@Example.org");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("two-factor sign-in removed"));
    assert_eq!(me_totp(&cloud, &session.access).await, "off");
    cloud.logged_in("dee@example.org").await;
    // Run again: nothing to remove, said so, still audited.
    let out = reset_totp(&url, "dee@example.org");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing changed"));

    let resets: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT actor, outcome, detail FROM audit_log WHERE action = 'totp_reset' ORDER BY audit_id",
    )
    .fetch_all(&cloud.owner)
    .await
    .unwrap();
    assert_eq!(resets.len(), 2);
    assert_eq!(
        (resets[0].0.as_str(), resets[0].1.as_str()),
        ("admin-cli", "ok")
    );
    assert_eq!(resets[0].2["user_id"], dee.to_string());
    assert_eq!(resets[1].1, "was_off");
    cloud.stop().await;
}
