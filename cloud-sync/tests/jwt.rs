//! Access-token abuse: every forged, altered or stale token is refused on `/api/v1/me` with
//! 401, a JSON error and `WWW-Authenticate: Bearer`. The forgeries are made here by hand; a
//! control token forged the same way with the service's own key and honest claims is
//! accepted, so each refusal is down to the one thing that token changes.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloud_sync::auth::{AUDIENCE, Grant, ISSUER, KEY_DIR};
use common::TestCloud;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The service's signing key: its id and PKCS#8 bytes, read from the data directory.
fn service_key(cloud: &TestCloud) -> (String, Vec<u8>) {
    let dir = cloud.data_dir.join(KEY_DIR);
    let entry = std::fs::read_dir(&dir)
        .expect("key dir")
        .next()
        .expect("one key")
        .expect("entry");
    let path = entry.path();
    let kid = path.file_stem().unwrap().to_str().unwrap().to_owned();
    (kid, std::fs::read(&path).expect("key file"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str) -> Value {
    json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now(), "exp": now() + 600 })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("encode")
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn forged_altered_and_stale_tokens_are_refused(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let ann = cloud.user("ann@example.org", Grant::Superadmin).await;
    let bob = cloud.user("bob@example.org", Grant::Superadmin).await;
    let (kid, pkcs8) = service_key(&cloud);
    let ours = EncodingKey::from_ed_der(&pkcs8);
    let public = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let sub = ann.to_string();

    // The control: forged with our key and honest claims, it works.
    let control = sign(Algorithm::EdDSA, Some(&kid), &claims(&sub), &ours);
    let me = cloud.me(&control).await;
    assert_eq!(me.status(), StatusCode::OK);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["email"], "ann@example.org");

    let mut forged: Vec<(&str, String)> = Vec::new();

    // alg "none", no signature.
    let header = json!({ "alg": "none", "typ": "JWT", "kid": kid });
    forged.push((
        "alg none",
        format!("{}.{}.", b64(&header), b64(&claims(&sub))),
    ));
    // HS256 keyed with the public key's bytes: the classic algorithm confusion.
    forged.push((
        "HS256 with the public key",
        sign(
            Algorithm::HS256,
            Some(&kid),
            &claims(&sub),
            &EncodingKey::from_secret(&public),
        ),
    ));
    // Another Ed25519 key claiming our key id.
    let stranger = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    forged.push((
        "another key",
        sign(
            Algorithm::EdDSA,
            Some(&kid),
            &claims(&sub),
            &EncodingKey::from_ed_der(stranger.as_ref()),
        ),
    ));
    // Our key, but the claims are wrong in one way each.
    let mut expired = claims(&sub);
    expired["iat"] = json!(now() - 4000);
    expired["exp"] = json!(now() - 3000);
    forged.push((
        "expired",
        sign(Algorithm::EdDSA, Some(&kid), &expired, &ours),
    ));
    let mut aud = claims(&sub);
    aud["aud"] = json!("some-other-api");
    forged.push(("wrong aud", sign(Algorithm::EdDSA, Some(&kid), &aud, &ours)));
    let mut iss = claims(&sub);
    iss["iss"] = json!("someone-else");
    forged.push(("wrong iss", sign(Algorithm::EdDSA, Some(&kid), &iss, &ours)));
    let mut no_exp = claims(&sub);
    no_exp.as_object_mut().unwrap().remove("exp");
    forged.push(("no exp", sign(Algorithm::EdDSA, Some(&kid), &no_exp, &ours)));
    let mut not_a_user = claims(&sub);
    not_a_user["sub"] = json!(uuid::Uuid::now_v7().to_string());
    forged.push((
        "unknown user",
        sign(Algorithm::EdDSA, Some(&kid), &not_a_user, &ours),
    ));
    // Tampered: bob's id in the payload, ann's signature kept.
    let mut parts: Vec<String> = control.split('.').map(str::to_owned).collect();
    let mut payload = claims(&sub);
    payload["sub"] = json!(bob.to_string());
    parts[1] = b64(&payload);
    forged.push(("tampered payload", parts.join(".")));
    // Key ids: none, and one we do not have.
    forged.push(("no kid", sign(Algorithm::EdDSA, None, &claims(&sub), &ours)));
    forged.push((
        "unknown kid",
        sign(
            Algorithm::EdDSA,
            Some("20990101T000000Z-ffffff"),
            &claims(&sub),
            &ours,
        ),
    ));
    forged.push(("not a JWT", "hello".to_owned()));

    for (what, token) in forged {
        let response = cloud.me(&token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
        assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_token", "{what}");
    }

    // No token at all, or another scheme: 401 asking for a bearer token.
    for authorization in [None, Some("Basic YW5uOnB3"), Some("Bearer ")] {
        let mut request = reqwest::Client::new().get(cloud.url("/api/v1/me"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization:?}"
        );
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="hallwatch""#
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated");
    }
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_token_signed_by_a_key_added_later_verifies(_: PgPoolOptions, opts: PgConnectOptions) {
    // Another replica (or the admin command) added a key this process has not loaded yet:
    // the unknown kid makes it read its key directory again, once.
    let cloud = TestCloud::start(&opts).await;
    let ann = cloud.user("ann@example.org", Grant::Superadmin).await;
    let kid = cloud_sync::auth::add_signing_key(&cloud.data_dir).unwrap();
    let pkcs8 = std::fs::read(cloud.data_dir.join(KEY_DIR).join(format!("{kid}.pk8"))).unwrap();
    let token = sign(
        Algorithm::EdDSA,
        Some(&kid),
        &claims(&ann.to_string()),
        &EncodingKey::from_ed_der(&pkcs8),
    );
    assert_eq!(cloud.me(&token).await.status(), StatusCode::OK);
    cloud.stop().await;
}
