//! The authorization matrix: every route of the served OpenAPI document × the four roles ×
//! {own school, another school of the same region, a school of another region}, each cell
//! asserting its status. A route missing from `RULES` fails the test, so a new route cannot
//! ship without deciding who may call it; a route that forgot its scope answers 200 where
//! the matrix expects 404 and fails too.

mod common;

use common::TestCloud;
use common::estate::{Estate, ROLES, SCHOOLS};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// No token needed (login and friends; tested in `auth.rs`).
    Public,
    /// Every role; the route names no school.
    Anyone(u16),
    /// Every role, within its scope: 404 outside.
    Read(u16),
    /// A region: seen by everyone with a school in it (and its admins).
    ReadRegion(u16),
    /// Within scope, and not viewers (403): acting on alerts.
    Act(u16),
    /// Administrators only (viewers 403 wherever), within scope (404 outside).
    Admin(u16),
}

/// Every route of the document, by method and path template.
const RULES: &[(&str, &str, Rule)] = &[
    ("post", "/api/v1/auth/login", Rule::Public),
    ("post", "/api/v1/auth/refresh", Rule::Public),
    ("post", "/api/v1/auth/logout", Rule::Public),
    ("get", "/api/v1/me", Rule::Anyone(200)),
    // One's own second factor: every role, no school. Starting again replaces a pending
    // secret, so every cell answers 200; confirm and disable without a body reach the
    // handler and are refused for the missing code (their flows are in `totp.rs`).
    ("post", "/api/v1/me/totp", Rule::Anyone(200)),
    ("post", "/api/v1/me/totp/confirm", Rule::Anyone(400)),
    ("post", "/api/v1/me/totp/disable", Rule::Anyone(400)),
    ("get", "/api/v1/regions", Rule::Anyone(200)),
    ("get", "/api/v1/regions/{region_id}", Rule::ReadRegion(200)),
    ("get", "/api/v1/schools", Rule::Anyone(200)),
    ("get", "/api/v1/schools/{school_id}", Rule::Read(200)),
    ("get", "/api/v1/schools/{school_id}/rooms", Rule::Read(200)),
    (
        "get",
        "/api/v1/schools/{school_id}/devices",
        Rule::Read(200),
    ),
    (
        "get",
        "/api/v1/schools/{school_id}/snapshots",
        Rule::Read(200),
    ),
    ("get", "/api/v1/alerts", Rule::Read(200)),
    ("get", "/api/v1/alerts/statistics", Rule::Read(200)),
    ("get", "/api/v1/alerts/export", Rule::Read(200)),
    ("get", "/api/v1/alerts/{alert_id}", Rule::Read(200)),
    (
        "post",
        "/api/v1/alerts/{alert_id}/acknowledge",
        Rule::Act(202),
    ),
    ("post", "/api/v1/alerts/{alert_id}/resolve", Rule::Act(202)),
    ("post", "/api/v1/alerts/{alert_id}/notes", Rule::Act(201)),
    ("get", "/api/v1/users", Rule::Admin(200)),
    ("post", "/api/v1/users", Rule::Admin(201)),
    ("get", "/api/v1/users/{user_id}", Rule::Admin(200)),
    ("delete", "/api/v1/users/{user_id}", Rule::Admin(204)),
    ("get", "/api/v1/audit", Rule::Admin(200)),
    ("get", "/api/v1/realtime/events", Rule::Anyone(200)),
];

/// Whether `role` (the school roles hold `north-a`) sees `school`.
fn sees(role: &str, school: &str) -> bool {
    match role {
        "superadmin" => true,
        "region_admin" => school.starts_with("north"),
        _ => school == "north-a",
    }
}

fn expected(rule: Rule, role: &str, school: &str) -> u16 {
    let viewer = role == "viewer";
    match rule {
        Rule::Public => unreachable!("public routes are not called with a token"),
        Rule::Anyone(ok) => ok,
        Rule::Read(ok) => {
            if sees(role, school) {
                ok
            } else {
                404
            }
        }
        Rule::ReadRegion(ok) => {
            // Every caller but the superadmin has schools in north only.
            if role == "superadmin" || school.starts_with("north") {
                ok
            } else {
                404
            }
        }
        Rule::Act(ok) => match (sees(role, school), viewer) {
            (false, _) => 404,
            (true, true) => 403,
            (true, false) => ok,
        },
        Rule::Admin(ok) => match (viewer, sees(role, school)) {
            (true, _) => 403,
            (false, false) => 404,
            (false, true) => ok,
        },
    }
}

/// The request for `(method, path)` aimed at `school`: path parameters point at that
/// school's objects; routes without one take `school_id` as a query parameter when they
/// document it.
fn request(
    estate: &Estate,
    path: &str,
    op: &Value,
    school: &str,
    n: usize,
) -> (String, Option<Value>) {
    let region = if school.starts_with("north") {
        "north"
    } else {
        "south"
    };
    let mut url = path
        .replace("{school_id}", school)
        .replace("{region_id}", region)
        .replace("{alert_id}", &estate.alerts[school].to_string())
        .replace("{user_id}", &estate.targets[school].to_string());
    let mut query = Vec::new();
    let documented = |name: &str| {
        op["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "query"))
    };
    if !path.contains('{') && documented("school_id") {
        query.push(format!("school_id={school}"));
    }
    if documented("format") {
        query.push("format=csv".to_owned());
    }
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let body = if path.ends_with("/notes") {
        Some(json!({ "body": "Checked the corridor camera." }))
    } else if path == "/api/v1/users" && op["requestBody"].is_object() {
        Some(json!({
            "email": format!("new-{n}@example.org"),
            "password": common::people::PASSWORD,
            "role": "viewer",
            "school_id": school,
        }))
    } else {
        None
    };
    (url, body)
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn every_route_answers_every_role_as_its_scope_says(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let estate = cloud.estate().await;
    let client = reqwest::Client::new();
    let document: Value = client
        .get(cloud.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["openapi"].as_str().map(|v| &v[..2]), Some("3."));

    let mut cells = 0;
    let mut routes = 0;
    let mut n = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            routes += 1;
            let rule = RULES
                .iter()
                .find(|(m, p, _)| m == method && p == path)
                .map(|r| r.2)
                .unwrap_or_else(|| {
                    panic!(
                        "{method} {path} is served but has no row in RULES: decide who may call it"
                    )
                });
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            if let Rule::Public = rule {
                assert!(
                    !secured,
                    "{method} {path} is public in RULES but documents a token"
                );
                continue;
            }
            assert!(
                secured,
                "{method} {path} takes a token but does not document it"
            );
            for school in SCHOOLS {
                for (role, _) in ROLES {
                    n += 1;
                    let (url, body) = request(&estate, path, op, school, n);
                    let method: Method = method.to_uppercase().parse().unwrap();
                    let mut req = client
                        .request(method.clone(), cloud.url(&url))
                        .bearer_auth(&estate.tokens[role]);
                    if let Some(body) = body {
                        req = req.json(&body);
                    }
                    let response = req.send().await.unwrap();
                    let status = response.status().as_u16();
                    let want = expected(rule, role, school);
                    let streaming = response
                        .headers()
                        .get("content-type")
                        .is_some_and(|v| v == "text/event-stream");
                    // A live stream never ends: its status is the answer.
                    let text = if streaming {
                        String::new()
                    } else {
                        response.text().await.unwrap()
                    };
                    assert_eq!(
                        status, want,
                        "{role} {method} {url} (target {school}) answered {status}: {text}"
                    );
                    cells += 1;
                }
            }
            // And without a token: 401, whoever the target.
            let (url, _) = request(&estate, path, op, "north-a", 0);
            let method: Method = method.to_uppercase().parse().unwrap();
            let response = client
                .request(method, cloud.url(&url))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{url}");
        }
    }
    assert_eq!(routes, RULES.len(), "every rule matches a served route");
    assert!(cells >= 200, "{cells} cells");
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn lists_hold_exactly_the_scope(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let estate = cloud.estate().await;
    let client = reqwest::Client::new();
    for (role, _) in ROLES {
        let visible: Vec<&str> = SCHOOLS.into_iter().filter(|s| sees(role, s)).collect();
        for (path, field) in [
            ("/api/v1/alerts", "school_id"),
            ("/api/v1/schools", "school_id"),
            ("/api/v1/alerts/export?format=json", "school_id"),
        ] {
            let body: Value = client
                .get(cloud.url(path))
                .bearer_auth(&estate.tokens[role])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let items = body["items"].as_array().or(body.as_array()).expect("items");
            let mut schools: Vec<&str> = items
                .iter()
                .map(|i| i[field].as_str().expect("school"))
                .collect();
            schools.sort_unstable();
            assert_eq!(schools, visible, "{role} {path}");
        }
        let regions: Value = client
            .get(cloud.url("/api/v1/regions"))
            .bearer_auth(&estate.tokens[role])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = regions
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["region_id"].as_str().unwrap())
            .collect();
        let want: &[&str] = if role == "superadmin" {
            &["north", "south"]
        } else {
            &["north"]
        };
        assert_eq!(names, want, "{role}");
    }
    cloud.stop().await;
}
