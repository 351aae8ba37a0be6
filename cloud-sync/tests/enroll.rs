//! Gateway enrollment over real HTTP, with real keys, CSRs and certificates.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::gateway::{key_and_csr, mtls_client};
use common::{TestCloud, enroll, enroll_raw};
use reqwest::StatusCode;
use shared::ids::Seq;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use x509_parser::prelude::{FromDer, X509Certificate};

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_token_enrolls_one_gateway_with_a_client_certificate(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let token = cloud.school("lincoln-high").await;
    let gateway = enroll(&cloud, &token).await.unwrap();
    assert_eq!(gateway.school_id.as_str(), "lincoln-high");
    assert!(gateway.gateway_id.as_str().starts_with("gw-"));
    assert_eq!(gateway.ca_pem, cloud.ca_pem);

    let pem = rustls::pki_types::pem::PemObject::from_pem_slice(gateway.cert_pem.as_bytes());
    let der: rustls::pki_types::CertificateDer = pem.unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    let o: Vec<_> = cert
        .subject()
        .iter_organization()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cn, [gateway.gateway_id.as_str()]);
    assert_eq!(o, ["lincoln-high"]);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(!cert.is_ca());

    // The certificate works on the sync listener: an empty batch is acknowledged and counts
    // as the gateway's first sync. Cursors open with a lane's first record, not before.
    assert_eq!(
        cloud
            .count("SELECT count(*) FROM gateways WHERE last_sync_at IS NULL")
            .await,
        1
    );
    let ack = gateway.send(&gateway.heartbeat()).await.unwrap();
    assert_eq!(ack.acked_through, Seq::ZERO);

    assert_eq!(
        cloud
            .count("SELECT count(*) FROM gateways WHERE last_sync_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(cloud.count("SELECT count(*) FROM sync_cursors").await, 0);
    assert_eq!(
        cloud
            .count("SELECT count(*) FROM enrollment_tokens WHERE used_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        cloud
            .count("SELECT count(*) FROM audit_log WHERE action = 'enroll' AND outcome = 'ok'")
            .await,
        1
    );
    // The CA's key is private to the service.
    let mode = std::fs::metadata(cloud.data_dir.join("gateway-ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn reused_unknown_and_expired_tokens_are_refused_and_audited(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let token = cloud.school("lincoln-high").await;
    enroll(&cloud, &token).await.unwrap();

    let reused = enroll(&cloud, &token).await.err().unwrap();
    assert_eq!(
        (reused.status, reused.code()),
        (StatusCode::CONFLICT, "token_used")
    );

    let guessed = enroll(&cloud, "hwe_0123456789abcdef0123456789abcdef01234567")
        .await
        .err()
        .unwrap();
    assert_eq!(
        (guessed.status, guessed.code()),
        (StatusCode::UNAUTHORIZED, "unknown_token")
    );
    assert!(
        guessed.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid")
    );

    let expired_token = cloud.school_with_ttl("oak-primary", Duration::ZERO).await;
    let expired = enroll(&cloud, &expired_token).await.err().unwrap();
    assert_eq!(
        (expired.status, expired.code()),
        (StatusCode::GONE, "token_expired")
    );

    let outcomes: Vec<(Option<String>, String)> = sqlx::query_as(
        "SELECT school_id, outcome FROM audit_log WHERE action = 'enroll' ORDER BY audit_id",
    )
    .fetch_all(&cloud.owner)
    .await
    .unwrap();
    let expected = [
        (Some("lincoln-high"), "ok"),
        (Some("lincoln-high"), "token_used"),
        (None, "unknown_token"),
        (Some("oak-primary"), "token_expired"),
    ];
    let outcomes: Vec<(Option<&str>, &str)> = outcomes
        .iter()
        .map(|(s, o)| (s.as_deref(), o.as_str()))
        .collect();
    assert_eq!(outcomes, expected);
    // Only the first enrollment made a gateway.
    assert_eq!(cloud.count("SELECT count(*) FROM gateways").await, 1);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_bad_csr_or_body_is_refused_and_the_token_stays_valid(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let token = cloud.school("lincoln-high").await;
    let (status, body) = enroll_raw(
        &cloud,
        &token,
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_csr");

    let response = reqwest::Client::new()
        .post(cloud.enroll_url())
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");

    enroll(&cloud, &token).await.unwrap();
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_token_redeemed_twice_at_once_enrolls_once(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let token = cloud.school("lincoln-high").await;
    let (a, b) = tokio::join!(enroll(&cloud, &token), enroll(&cloud, &token));
    assert_eq!(u8::from(a.is_ok()) + u8::from(b.is_ok()), 1);
    assert_eq!(cloud.count("SELECT count(*) FROM gateways").await, 1);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn the_sync_listener_refuses_certificates_from_elsewhere(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let gateway = cloud.enrolled("lincoln-high").await;

    // Same names, but signed by a CA of the attacker's own.
    let (key, _) = key_and_csr();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, gateway.gateway_id.as_str());
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "lincoln-high");
    let forged = params.self_signed(&key).unwrap();
    let client = mtls_client(&forged.pem(), &key.serialize_pem(), &cloud.ca_pem);
    let result = client
        .post(cloud.sync_url())
        .body(vec![0u8; 4])
        .send()
        .await;
    assert!(
        result.is_err(),
        "a forged certificate was accepted: {result:?}"
    );

    // And no certificate at all.
    let ca = reqwest::Certificate::from_pem(cloud.ca_pem.as_bytes()).unwrap();
    let anonymous = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    assert!(
        anonymous
            .post(cloud.sync_url())
            .body(vec![0u8; 4])
            .send()
            .await
            .is_err()
    );
    cloud.stop().await;
}

/// `POST /api/v1/enroll/check` with `body`: (status, JSON answer).
async fn check_raw(cloud: &TestCloud, body: String) -> (StatusCode, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/v1/enroll/check", cloud.public))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the cloud answers");
    let status = response.status();
    let retry = response.headers().get("retry-after").is_some();
    let mut json: serde_json::Value = response.json().await.expect("a JSON answer");
    if retry {
        json["retry_after_header"] = true.into();
    }
    (status, json)
}

async fn check(cloud: &TestCloud, token: &str, school: &str) -> (StatusCode, serde_json::Value) {
    check_raw(
        cloud,
        serde_json::json!({ "token": token, "school_id": school }).to_string(),
    )
    .await
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_token_is_checked_without_being_used_up_and_each_refusal_is_named(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let token = cloud.school("lincoln-high").await;

    // Valid for its school, as often as asked: the token still enrolls afterwards.
    for _ in 0..3 {
        let (status, body) = check(&cloud, &token, "lincoln-high").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["school_id"], "lincoln-high");
        let expires = body["expires_at"].as_i64().unwrap();
        let now = shared::UnixMillis::now().get();
        assert!(expires > now + 23 * 3600 * 1000 && expires <= now + 24 * 3600 * 1000 + 60_000);
    }
    // Another school's gateway: refused, naming the token's school.
    let (status, body) = check(&cloud, &token, "oak-primary").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "wrong_school");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("for school lincoln-high, not oak-primary"),
        "{body}"
    );
    enroll(&cloud, &token).await.unwrap();
    // Used, unknown, expired: the codes enrollment answers.
    let (status, body) = check(&cloud, &token, "lincoln-high").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("token_used"))
    );
    let (status, body) = check(
        &cloud,
        "hwe_0123456789abcdef0123456789abcdef01234567",
        "lincoln-high",
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown_token"))
    );
    let expired = cloud.school_with_ttl("oak-primary", Duration::ZERO).await;
    let (status, body) = check(&cloud, &expired, "oak-primary").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("token_expired"))
    );
    // Malformed and oversized bodies, and a school id that is not one.
    let (status, body) = check_raw(&cloud, "{\"token\": 1}".into()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    let (status, _) = check(&cloud, &token, "not a school").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = check_raw(&cloud, format!("\"{}\"", "x".repeat(70_000))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large"))
    );

    // Refusals are audited; a successful check is not (it changes nothing).
    let outcomes: Vec<(Option<String>, String)> = sqlx::query_as(
        "SELECT school_id, outcome FROM audit_log WHERE action = 'enroll_check' \
         ORDER BY audit_id",
    )
    .fetch_all(&cloud.owner)
    .await
    .unwrap();
    let outcomes: Vec<(Option<&str>, &str)> = outcomes
        .iter()
        .map(|(s, o)| (s.as_deref(), o.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (Some("lincoln-high"), "wrong_school"),
            (Some("lincoln-high"), "token_used"),
            (None, "unknown_token"),
            (Some("oak-primary"), "token_expired"),
        ]
    );
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn token_checks_share_the_source_address_budget_of_logins(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let options = common::Options {
        login_limits: cloud_sync::LoginLimits {
            per_account: cloud_sync::Quota {
                burst: 100,
                every: Duration::from_secs(1),
            },
            per_source: cloud_sync::Quota {
                burst: 3,
                every: Duration::from_secs(3600),
            },
        },
        ..common::Options::default()
    };
    let cloud = TestCloud::start_with(&opts, options).await;
    let token = cloud.school("lincoln-high").await;
    for _ in 0..3 {
        assert_eq!(
            check(&cloud, &token, "lincoln-high").await.0,
            StatusCode::OK
        );
    }
    let (status, body) = check(&cloud, &token, "lincoln-high").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(body["retry_after_header"], true);
    cloud.stop().await;
}
