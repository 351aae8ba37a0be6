//! The dashboard's files as the public listener serves them: every file with its type and the
//! security headers, revalidation with `ETag`, an unknown file refused as JSON, and the pages
//! kept out of the API's OpenAPI document. (The page itself runs in a real browser in
//! edge-agent/tests/cloud_dashboard.rs, against a real gateway.)

mod common;

use common::TestCloud;
use reqwest::StatusCode;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn every_file_is_served_with_its_type_and_a_strict_policy(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", cloud.public);
    for (path, kind, expect) in [
        (
            "/",
            "text/html",
            "<script type=\"module\" src=\"/assets/app.js\">",
        ),
        ("/assets/app.js", "text/javascript", "import * as session"),
        (
            "/assets/session.js",
            "text/javascript",
            "export async function login",
        ),
        ("/assets/views.js", "text/javascript", "export function h("),
        ("/assets/style.css", "text/css", ".banner"),
    ] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header(CONTENT_TYPE).starts_with(kind), "{path}");
        let csp = header(CONTENT_SECURITY_POLICY);
        assert!(csp.starts_with("default-src 'self';"), "{path}: {csp}");
        assert!(
            !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(header(X_CONTENT_TYPE_OPTIONS), "nosniff", "{path}");
        assert_eq!(header(REFERRER_POLICY), "no-referrer", "{path}");
        assert_eq!(header(CACHE_CONTROL), "no-cache", "{path}");
        let etag = header(ETAG);
        assert!(etag.starts_with('"') && etag.len() > 2, "{path}: {etag}");
        let body = response.text().await.unwrap();
        assert!(body.contains(expect), "{path} lacks {expect}");

        // Revalidation: the same file answers 304 without a body; a stale tag gets the file.
        let again = client
            .get(format!("{base}{path}"))
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.text().await.unwrap(), "", "{path}");
        let stale = client
            .get(format!("{base}{path}"))
            .header(IF_NONE_MATCH, "\"0000000000000000\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::OK, "{path}");
    }

    // Nothing inline: the page could not run under its own policy otherwise.
    let index = client
        .get(&base)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !index.contains("<script>") && !index.contains("style="),
        "{index}"
    );
    // The sign-in form can ask for a second factor the way phones fill it in: a numeric
    // keypad and the one-time code from a text message or app offered above it.
    let code_field = index
        .split("<input id=\"totp-code\"")
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .expect("the sign-in form has a code field");
    for attribute in [
        "inputmode=\"numeric\"",
        "autocomplete=\"one-time-code\"",
        "maxlength=\"7\"",
    ] {
        assert!(
            code_field.contains(attribute),
            "{code_field} lacks {attribute}"
        );
    }

    // Unknown files and pages are JSON 404s, like unknown API routes.
    for path in ["/assets/nope.js", "/assets/../Cargo.toml", "/app"] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }

    // The pages are not API: the document (which the authorization matrix walks) lists none.
    let document: Value = client
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert!(!paths.is_empty());
    assert!(
        paths.keys().all(|p| p.starts_with("/api/v1/")),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    cloud.stop().await;
}
