//! The REST API's behaviour beyond who may call what (that is `authz.rs`): every refusal of
//! bad input, cursor pages, an action requested in the cloud and confirmed by the school,
//! notes and exports, the audit of scope refusals, and managing people.

mod common;

use common::TestCloud;
use common::estate::Estate;
use common::people::{PASSWORD, error_code};
use common::records::{alert_event, command_result};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use shared::alert::AlertState;
use shared::ids::AlertId;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

struct Api<'a> {
    cloud: &'a TestCloud,
    client: reqwest::Client,
}

impl<'a> Api<'a> {
    fn new(cloud: &'a TestCloud) -> Self {
        Self {
            cloud,
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, token: &str, path: &str) -> Response {
        self.client
            .get(self.cloud.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("http")
    }

    async fn json(&self, token: &str, path: &str) -> Value {
        let response = self.get(token, path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("http")
    }

    async fn post(&self, token: &str, path: &str, body: Option<Value>) -> Response {
        let mut req = self.client.post(self.cloud.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("http")
    }

    async fn delete(&self, token: &str, path: &str) -> Response {
        self.client
            .delete(self.cloud.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("http")
    }
}

/// Asserts `response` is `status` with error code `code`, and its message mentions `hint`.
async fn refused(response: Response, status: u16, code: &str, hint: &str) {
    let url = response.url().to_string();
    assert_eq!(response.status().as_u16(), status, "{url}");
    let body: Value = response.json().await.expect("http");
    assert_eq!(body["error"]["code"], code, "{url}: {body}");
    let message = body["error"]["message"].as_str().expect("http");
    assert!(message.contains(hint), "{url}: {message:?} lacks {hint:?}");
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn bad_input_is_refused_with_what_is_wrong(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let Estate { tokens, alerts, .. } = cloud.estate().await;
    let api = Api::new(&cloud);
    let t = &tokens["superadmin"];
    let alert = alerts["north-a"];

    for (path, code, hint) in [
        ("/api/v1/alerts?state=panicking", "invalid_query", "state"),
        ("/api/v1/alerts?kind=flood", "invalid_query", "kind"),
        ("/api/v1/alerts?limit=0", "invalid_query", "limit"),
        ("/api/v1/alerts?limit=201", "invalid_query", "limit"),
        ("/api/v1/alerts?limit=many", "invalid_query", "limit"),
        ("/api/v1/alerts?cursor=not-ours", "invalid_cursor", "cursor"),
        ("/api/v1/alerts?sort=asc", "invalid_query", "sort"),
        ("/api/v1/alerts?school_id=a,b", "invalid_query", "school"),
        ("/api/v1/alerts?from=yesterday", "invalid_query", "from"),
        (
            "/api/v1/alerts?from=2026-11-21T10:00:00Z&to=2026-11-21T09:00:00Z",
            "invalid_query",
            "before",
        ),
        ("/api/v1/alerts/export", "invalid_query", "format"),
        (
            "/api/v1/alerts/export?format=xml",
            "invalid_query",
            "csv or json",
        ),
        (
            "/api/v1/alerts/statistics?from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "invalid_query",
            "366 days",
        ),
        (
            "/api/v1/schools/north-a/snapshots?from=2024-01-01T00:00:00Z",
            "invalid_query",
            "366 days",
        ),
        (
            "/api/v1/schools/north-a/devices?status=sleepy",
            "invalid_query",
            "status",
        ),
    ] {
        refused(api.get(t, path).await, 400, code, hint).await;
    }
    let long_action = format!("/api/v1/audit?action={}", "x".repeat(65));
    refused(api.get(t, &long_action).await, 400, "invalid_query", "64").await;

    // Ids that cannot name anything answer like ids that name nothing.
    for path in [
        "/api/v1/alerts/42",
        "/api/v1/schools/Not%20An%20Id",
        "/api/v1/users/nobody",
        "/api/v1/regions/%2E%2E",
    ] {
        refused(api.get(t, path).await, 404, "not_found", "no such").await;
    }
    let unknown = AlertId::new();
    refused(
        api.get(t, &format!("/api/v1/alerts/{unknown}")).await,
        404,
        "not_found",
        "alert",
    )
    .await;

    // Bodies: bounded, JSON, the right shape.
    let notes = format!("/api/v1/alerts/{alert}/notes");
    refused(
        api.post(t, &notes, Some(json!({ "body": "   " }))).await,
        400,
        "invalid_body",
        "1 to 2000",
    )
    .await;
    refused(
        api.post(t, &notes, Some(json!({ "body": "é".repeat(2001) })))
            .await,
        400,
        "invalid_body",
        "not 2001",
    )
    .await;
    refused(
        api.post(t, &notes, Some(json!({ "body": "x".repeat(20_000) })))
            .await,
        413,
        "body_too_large",
        "16384",
    )
    .await;
    refused(
        api.post(t, &notes, Some(json!({ "text": "hi" }))).await,
        400,
        "invalid_body",
        "unknown field",
    )
    .await;
    let raw = api
        .client
        .post(cloud.url(&notes))
        .bearer_auth(t)
        .body("{not json")
        .send()
        .await
        .unwrap();
    refused(raw, 400, "invalid_body", "JSON").await;

    let user = |email: &str, password: &str, role: &str, school: Option<&str>| json!({ "email": email, "password": password, "role": role, "school_id": school });
    for (body, hint) in [
        (
            user("not-an-address", PASSWORD, "viewer", Some("north-a")),
            "email",
        ),
        (
            user("a@example.org", "short", "viewer", Some("north-a")),
            "password",
        ),
        (
            user("a@example.org", PASSWORD, "janitor", Some("north-a")),
            "role",
        ),
        (
            user("a@example.org", PASSWORD, "region_admin", None),
            "region",
        ),
        (user("a@example.org", PASSWORD, "viewer", None), "school"),
        (
            user("a@example.org", PASSWORD, "viewer", Some("no way")),
            "school_id",
        ),
    ] {
        refused(
            api.post(t, "/api/v1/users", Some(body)).await,
            400,
            "invalid_body",
            hint,
        )
        .await;
    }
    let taken = user("viewer@example.org", PASSWORD, "viewer", Some("north-a"));
    refused(
        api.post(t, "/api/v1/users", Some(taken)).await,
        409,
        "email_taken",
        "exists",
    )
    .await;
    let nowhere = user("b@example.org", PASSWORD, "viewer", Some("atlantis"));
    refused(
        api.post(t, "/api/v1/users", Some(nowhere)).await,
        404,
        "not_found",
        "atlantis",
    )
    .await;
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn pages_follow_the_cursor_newest_first(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let estate = cloud.estate().await;
    let api = Api::new(&cloud);
    let gateway = &estate.gateways["north-a"];
    let more: Vec<_> = (2..=6)
        .map(|seq| alert_event(seq, AlertId::new(), AlertState::Triggered))
        .collect();
    gateway.send(&gateway.alerts(more)).await.unwrap();

    let token = &estate.tokens["school_admin"];
    let mut seen = Vec::new();
    let mut path = "/api/v1/alerts?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = api.json(token, &path).await;
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|a| {
            (
                a["opened_at"].as_str().unwrap().to_owned(),
                a["alert_id"].as_str().unwrap().to_owned(),
            )
        }));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/alerts?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10, "the cursor loops");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 6, "north-a's six alerts, each once");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first");
    let filtered = api
        .json(token, "/api/v1/alerts?state=resolved&kind=panic")
        .await;
    assert_eq!(filtered["items"], json!([]));

    // A period to the microsecond: north-a's alerts were opened at 08:00:01 … 08:00:06, each
    // on a whole millisecond; [08:00:02.0004, 08:00:05.0004) holds the ones at 3, 4 and 5.
    let period = "from=2026-11-21T08:00:02.000400Z&to=2026-11-21T08:00:05.000400Z";
    let filtered = api
        .json(
            token,
            &format!("/api/v1/alerts?state=triggered&kind=panic&{period}"),
        )
        .await;
    let opened: Vec<&str> = filtered["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["opened_at"].as_str().unwrap())
        .collect();
    assert_eq!(
        opened,
        [
            "2026-11-21T08:00:05Z",
            "2026-11-21T08:00:04Z",
            "2026-11-21T08:00:03Z"
        ],
        "{filtered}"
    );

    // Statistics over the region: one entry per school with alerts, each counted once.
    let stats = api
        .json(
            &estate.tokens["region_admin"],
            "/api/v1/alerts/statistics?from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z",
        )
        .await;
    let schools: Vec<&str> = stats
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["school_id"].as_str().unwrap())
        .collect();
    assert_eq!(schools, ["north-a", "north-b"], "{stats}");
    assert_eq!(stats[0]["total"], 6, "{stats}");
    assert_eq!(stats[0]["by_kind"], json!({ "panic": 6 }), "{stats}");
    assert_eq!(stats[0]["by_state"], json!({ "triggered": 6 }), "{stats}");
    assert_eq!(stats[1]["total"], 1, "{stats}");
    assert!(stats[0]["median_seconds_to_acknowledge"].is_null());
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn an_action_is_requested_until_the_school_confirms_it(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let estate = cloud.estate().await;
    let api = Api::new(&cloud);
    let token = &estate.tokens["region_admin"];
    let alert = estate.alerts["north-b"];
    let gateway = &estate.gateways["north-b"];
    let detail_path = format!("/api/v1/alerts/{alert}");

    let response = api
        .post(token, &format!("{detail_path}/acknowledge"), None)
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let requested: Value = response.json().await.unwrap();
    assert_eq!(requested["status"], "requested");
    let command = requested["command_id"].as_str().unwrap().to_owned();

    let detail = api.json(token, &detail_path).await;
    assert_eq!(detail["state"], "triggered", "the cloud never decides");
    assert_eq!(detail["requested"], "acknowledge");
    assert_eq!(detail["requests"][0]["command_id"], command.as_str());
    assert_eq!(detail["requests"][0]["confirmed_at"], Value::Null);
    // People read who asked by their address; the id stays for tools.
    assert_eq!(
        detail["requests"][0]["requested_by_email"],
        "region@example.org"
    );
    assert!(
        detail["requests"][0]["requested_by"]
            .as_str()
            .unwrap()
            .starts_with("user:")
    );
    assert_eq!(detail["events"].as_array().unwrap().len(), 1);

    // The next sync carries the command; the school applies it and says so.
    let ack = gateway.send(&gateway.heartbeat()).await.unwrap();
    assert_eq!(ack.commands.len(), 1);
    assert_eq!(ack.commands[0].id.to_string(), command);
    gateway
        .send(&gateway.alerts(vec![
            alert_event(2, alert, AlertState::Acknowledged),
            command_result(3, ack.commands[0].id),
        ]))
        .await
        .unwrap();
    let detail = api.json(token, &detail_path).await;
    assert_eq!(detail["state"], "acknowledged");
    assert_eq!(detail["requested"], Value::Null);
    assert_eq!(detail["requests"][0]["outcome"], "applied");
    let events: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["triggered", "acknowledged"]);

    // Once the school resolved it, the cloud asks nothing more of it.
    gateway
        .send(&gateway.alerts(vec![alert_event(4, alert, AlertState::Resolved)]))
        .await
        .unwrap();
    refused(
        api.post(token, &format!("{detail_path}/resolve"), None)
            .await,
        409,
        "alert_closed",
        "resolved",
    )
    .await;

    // Notes stay in the cloud, in order, and are audited.
    for text in ["Police called.", "All clear, drill ended."] {
        let response = api
            .post(
                token,
                &format!("{detail_path}/notes"),
                Some(json!({ "body": text })),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let detail = api.json(token, &detail_path).await;
    let notes: Vec<&str> = detail["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["body"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["Police called.", "All clear, drill ended."]);
    assert_eq!(detail["notes"][0]["author_email"], "region@example.org");
    let audit = api
        .json(
            token,
            "/api/v1/audit?school_id=north-b&action=add_alert_note",
        )
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 2);
    assert_eq!(audit["items"][0]["actor_email"], "region@example.org");
    // An actor that is not a person has no address.
    let audit = api.json(token, "/api/v1/audit?school_id=north-b").await;
    let others: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["actor"].as_str().unwrap().starts_with("user:"))
        .collect();
    assert!(!others.is_empty(), "{audit}");
    assert!(others.iter().all(|e| e["actor_email"].is_null()), "{audit}");

    // Statistics count it, and the time it took to acknowledge (1 s on the gateway's clock).
    let stats = api
        .json(
            token,
            "/api/v1/alerts/statistics?school_id=north-b&from=2026-01-01T00:00:00Z&to=2026-12-31T00:00:00Z",
        )
        .await;
    assert_eq!(stats[0]["school_id"], "north-b");
    assert_eq!(stats[0]["total"], 1);
    assert_eq!(stats[0]["by_state"]["resolved"], 1);
    assert_eq!(stats[0]["median_seconds_to_acknowledge"], 1.0);
    assert_eq!(stats[0]["median_seconds_to_resolve"], 3.0);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn exports_are_downloads_of_the_scope(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let estate = cloud.estate().await;
    let api = Api::new(&cloud);
    let response = api
        .get(
            &estate.tokens["region_admin"],
            "/api/v1/alerts/export?format=csv",
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let disposition = response.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"alerts-"),
        "{disposition}"
    );
    let text = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(&header[0], "alert_id");
    assert_eq!(&header[5], "state");
    let mut schools: Vec<String> = reader.records().map(|r| r.unwrap()[1].to_owned()).collect();
    schools.sort();
    assert_eq!(schools, ["north-a", "north-b"]);
    let audit = api
        .json(
            &estate.tokens["superadmin"],
            "/api/v1/audit?action=export_alerts",
        )
        .await;
    assert_eq!(audit["items"][0]["detail"]["rows"], 2);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn scope_refusals_are_audited_for_the_platform_only(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let estate = cloud.estate().await;
    let api = Api::new(&cloud);
    let school_admin = &estate.tokens["school_admin"];
    let south = estate.alerts["south-a"];
    for path in [
        "/api/v1/schools/south-a".to_owned(),
        format!("/api/v1/alerts/{south}"),
        "/api/v1/regions/south".to_owned(),
    ] {
        refused(
            api.get(school_admin, &path).await,
            404,
            "not_found",
            "no such",
        )
        .await;
    }
    refused(
        api.post(
            school_admin,
            &format!("/api/v1/alerts/{south}/acknowledge"),
            None,
        )
        .await,
        404,
        "not_found",
        "alert",
    )
    .await;
    // A missing alert is not a refusal: nothing to audit.
    let missing = AlertId::new();
    api.get(school_admin, &format!("/api/v1/alerts/{missing}"))
        .await;

    let audit = api
        .json(&estate.tokens["superadmin"], "/api/v1/audit?action=request")
        .await;
    let refusals: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["outcome"].as_str().unwrap(),
                e["detail"]["request"].as_str().unwrap(),
            )
        })
        .collect();
    let alert_path = format!("GET /api/v1/alerts/{south}");
    let ack_path = format!("POST /api/v1/alerts/{south}/acknowledge");
    assert_eq!(
        refusals,
        [
            ("out_of_scope", ack_path.as_str()),
            ("out_of_scope", "GET /api/v1/regions/south"),
            ("out_of_scope", alert_path.as_str()),
            ("out_of_scope", "GET /api/v1/schools/south-a"),
        ]
    );
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["school_id"].is_null() && e["actor"].as_str().unwrap().starts_with("user:"))
    );
    // The school admin's own audit view shows none of the platform's rows.
    let own = api.json(school_admin, "/api/v1/audit?action=request").await;
    assert_eq!(own["items"], json!([]));
    // A viewer reads no audit at all.
    refused(
        api.get(&estate.tokens["viewer"], "/api/v1/audit").await,
        403,
        "forbidden",
        "administrators",
    )
    .await;
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn admins_manage_the_people_of_their_scope(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let estate = cloud.estate().await;
    let api = Api::new(&cloud);
    let region = &estate.tokens["region_admin"];

    // A region admin adds a school admin at a school of the region; they can log in.
    let response = api
        .post(
            region,
            "/api/v1/users",
            Some(
                json!({ "email": "Head@North-B.example.org", "password": PASSWORD,
                         "role": "school_admin", "school_id": "north-b" }),
            ),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let head = created["user_id"].as_str().unwrap().to_owned();
    let tokens = cloud.logged_in("head@north-b.example.org").await;
    let me: Value = cloud.me(&tokens.access).await.json().await.unwrap();
    assert_eq!(me["scope"]["schools"], json!(["north-b"]));

    // Granting above their station is refused, whatever the school.
    refused(
        api.post(
            region,
            "/api/v1/users",
            Some(json!({ "email": "boss@example.org", "password": PASSWORD,
                         "role": "region_admin", "region_id": "north" })),
        )
        .await,
        403,
        "forbidden",
        "superadmin",
    )
    .await;
    // A school admin cannot see, let alone disable, the region admin.
    let listed = api
        .json(&estate.tokens["school_admin"], "/api/v1/users")
        .await;
    let emails: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        [
            "school@example.org",
            "viewer-north-a@example.org",
            "viewer@example.org"
        ]
    );

    // Disabling ends the person's sessions at once.
    let response = api.delete(region, &format!("/api/v1/users/{head}")).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        cloud.me(&tokens.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        cloud.refresh(&tokens.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let user = api.json(region, &format!("/api/v1/users/{head}")).await;
    assert!(user["disabled_at"].is_string());

    // Nobody disables themselves.
    let me: Value = cloud.me(region).await.json().await.unwrap();
    let own_id = me["user_id"].as_str().unwrap();
    refused(
        api.delete(region, &format!("/api/v1/users/{own_id}")).await,
        409,
        "self",
        "your own",
    )
    .await;

    // Someone who also holds a role outside the region is a superadmin's to disable.
    let target = estate.targets["north-a"];
    sqlx::query(
        "INSERT INTO role_grants (user_id, role, school_id) VALUES ($1, 'viewer', 'south-a')",
    )
    .bind(target)
    .execute(&cloud.owner)
    .await
    .unwrap();
    refused(
        api.delete(region, &format!("/api/v1/users/{target}")).await,
        403,
        "forbidden",
        "outside your scope",
    )
    .await;
    let response = api
        .delete(
            &estate.tokens["superadmin"],
            &format!("/api/v1/users/{target}"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let code = error_code(
        api.delete(&estate.tokens["viewer"], &format!("/api/v1/users/{target}"))
            .await,
    )
    .await;
    assert_eq!(code, "forbidden");
    cloud.stop().await;
}
