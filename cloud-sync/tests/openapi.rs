//! The served OpenAPI document under the ecosystem's own checker, and its constraints held to
//! the handlers: `openapi-spec-validator` (PyPI, pinned; `cargo xtask test` installs it in a
//! venv and names the venv in `HALLWATCH_PYTOOLS`) validates the document a running cloud
//! serves, and for a few representative fields a value at the documented bound is accepted
//! and one just past it refused. The bounds are read from the document, not repeated here.
//! Without the venv the tests fail, never skip.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::TestCloud;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Where `cargo xtask test` put the Python tools (a venv).
const PYTOOLS_VAR: &str = "HALLWATCH_PYTOOLS";

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn the_served_document_passes_openapi_spec_validator(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let document = served(&cloud).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    let out = validate(&file);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(": OK"), "{}", text(&out));

    // The validator can fail: the same document with a response that lacks its (required)
    // description is refused.
    let mut broken = document;
    let responses = &mut broken["paths"]["/api/v1/me"]["get"]["responses"];
    responses["200"]
        .as_object_mut()
        .expect("a 200 answer")
        .remove("description");
    let file = dir.path().join("broken.json");
    std::fs::write(&file, serde_json::to_vec(&broken).unwrap()).unwrap();
    let out = validate(&file);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("description"), "{}", text(&out));
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_value_at_a_documented_bound_is_accepted_and_one_past_it_refused(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let estate = cloud.estate().await;
    let document = served(&cloud).await;
    let token = &estate.tokens["superadmin"];
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(cloud.url(&path)).bearer_auth(token);
        async move { request.send().await.unwrap().status() }
    };
    let post = |path: String, body: Value| {
        let request = client.post(cloud.url(&path)).bearer_auth(token).json(&body);
        async move { request.send().await.unwrap().status() }
    };

    // A query's integer range: `limit` of the alerts.
    let limit = &param(&document, "/api/v1/alerts", "limit")["schema"];
    let (min, max) = (number(&limit["minimum"]), number(&limit["maximum"]));
    for (n, want) in [
        (min, StatusCode::OK),
        (max, StatusCode::OK),
        (min - 1, StatusCode::BAD_REQUEST),
        (max + 1, StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(get(format!("/api/v1/alerts?limit={n}")).await, want, "{n}");
    }

    // A query's length: `action` of the audit log.
    let action = &param(&document, "/api/v1/audit", "action")["schema"];
    let max = number(&action["maxLength"]);
    let at = "a".repeat(usize::try_from(max).unwrap());
    assert_eq!(get(format!("/api/v1/audit?action={at}")).await, 200);
    assert_eq!(get(format!("/api/v1/audit?action={at}a")).await, 400);

    // A query's enum: every documented state of an alert is accepted, and nothing else.
    let states = &param(&document, "/api/v1/alerts", "state")["schema"]["enum"];
    let states: Vec<&str> = states
        .as_array()
        .unwrap()
        .iter()
        .flat_map(Value::as_str)
        .collect();
    assert_eq!(states.len(), 5, "{states:?}");
    for state in &states {
        assert_eq!(get(format!("/api/v1/alerts?state={state}")).await, 200);
    }
    assert_eq!(get("/api/v1/alerts?state=open".to_owned()).await, 400);

    // A query's pattern and length: a school id of the documented length that is no school
    // is looked for (the superadmin's scope holds it: an empty page); one character longer,
    // or with a character outside the pattern, is refused as malformed.
    let school = &param(&document, "/api/v1/alerts", "school_id")["schema"];
    assert_eq!(school["pattern"], "^[A-Za-z0-9_-]+$");
    let max = usize::try_from(number(&school["maxLength"])).unwrap();
    let at = "s".repeat(max);
    assert_eq!(get(format!("/api/v1/alerts?school_id={at}")).await, 200);
    assert_eq!(get(format!("/api/v1/alerts?school_id={at}s")).await, 400);
    assert_eq!(
        get("/api/v1/alerts?school_id=north.a".to_owned()).await,
        400
    );

    // A body's length: a note of at most the documented number of characters (not bytes:
    // each `é` is two).
    let note = &schema(&document, "NewNote")["properties"]["body"];
    let max = usize::try_from(number(&note["maxLength"])).unwrap();
    let notes = format!("/api/v1/alerts/{}/notes", estate.alerts["north-a"]);
    let body = |n: usize| json!({ "body": "é".repeat(n) });
    assert_eq!(post(notes.clone(), body(max)).await, 201);
    assert_eq!(post(notes.clone(), body(max + 1)).await, 400);
    assert_eq!(post(notes.clone(), json!({ "body": "  " })).await, 400);

    // A body's lower bound: a new person's password.
    let password = &schema(&document, "NewUser")["properties"]["password"];
    let min = usize::try_from(number(&password["minLength"])).unwrap();
    let user = |n: usize, password: String| {
        json!({
            "email": format!("bound-{n}@example.org"),
            "password": password,
            "role": "viewer",
            "school_id": "north-a",
        })
    };
    assert_eq!(
        post("/api/v1/users".to_owned(), user(1, "p".repeat(min))).await,
        201
    );
    assert_eq!(
        post("/api/v1/users".to_owned(), user(2, "p".repeat(min - 1))).await,
        400
    );
    let role = &schema(&document, "NewUser")["properties"]["role"];
    assert_eq!(
        enum_of(&document, role),
        json!(["superadmin", "region_admin", "school_admin", "viewer"]),
        "{role}"
    );
    let mut unknown_role = user(3, "p".repeat(min));
    unknown_role["role"] = json!("janitor");
    assert_eq!(post("/api/v1/users".to_owned(), unknown_role).await, 400);
}

// === helpers ===

async fn served(cloud: &TestCloud) -> Value {
    let response = reqwest::get(cloud.url(cloud_sync::api::OPENAPI_PATH))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `openapi-spec-validator` from the venv `cargo xtask test` made.
fn validate(file: &std::path::Path) -> Output {
    let venv = std::env::var_os(PYTOOLS_VAR).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{PYTOOLS_VAR} is not set: it names the venv with openapi-spec-validator that \
             `cargo xtask test` installs (run e.g. `cargo xtask test -- -p cloud-sync --test openapi`)"
        )
    });
    let program = venv.join("bin/openapi-spec-validator");
    Command::new(&program)
        .args(["--validation-errors", "all"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The parameter `name` of `GET path`.
fn param<'d>(document: &'d Value, path: &str, name: &str) -> &'d Value {
    document["paths"][path]["get"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("GET {path} documents no parameter {name}"))
}

/// A named schema of the document's components.
fn schema<'d>(document: &'d Value, name: &str) -> &'d Value {
    let schema = &document["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

/// The `enum` of a schema, inline or behind a `$ref` (or the one schema of an `allOf` or
/// `oneOf`, as utoipa writes a nullable or described reference).
fn enum_of(document: &Value, schema: &Value) -> Value {
    if let Some(values) = schema.get("enum") {
        return values.clone();
    }
    if let Some(path) = schema["$ref"].as_str() {
        let target = path
            .trim_start_matches("#/")
            .split('/')
            .fold(document, |node, key| &node[key]);
        return enum_of(document, target);
    }
    for combined in ["allOf", "oneOf"] {
        if let Some(first) = schema[combined].as_array().and_then(|all| all.first()) {
            return enum_of(document, first);
        }
    }
    Value::Null
}

fn number(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("not a documented bound: {value}"))
}
