//! Observability of the real processes: `edge-agent run` and `cloud-sync serve` scraped after
//! a button (over MQTT with mutual TLS) pressed and the press synced; `/readyz` naming a
//! stuck engine; logs as JSON lines whose request id is the one the answer carried.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Gateway;
use common::agent::{RunningAgent, http_client};
use common::button::FwDevice;
use common::cloud::TestCloud;
use firmware_protocol::{AckState, PressPattern};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const WAIT: Duration = Duration::from_secs(15);

/// One sample of the text exposition: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the OpenMetrics text: `# ` lines are metadata, every other line one sample. Label
/// values here never hold `,` or `"`, so a plain split is enough; anything unparsable fails.
fn parse(text: &str) -> Vec<Sample> {
    assert!(text.ends_with("# EOF\n"), "not OpenMetrics text:\n{text}");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let labels = rest
                        .strip_suffix('}')
                        .unwrap()
                        .split(',')
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').unwrap();
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, BTreeMap::new()),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().unwrap_or_else(|_| panic!("value of {line}")),
            }
        })
        .collect()
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    match found.as_slice() {
        [one] => one.value,
        [] => panic!("no sample {name} {labels:?}"),
        many => many.iter().map(|s| s.value).sum(),
    }
}

async fn scrape(url: &str) -> (Vec<Sample>, String) {
    let response = http_client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    (parse(&text), text)
}

/// An enrolled gateway with one button, its agent and its cloud.
async fn enrolled_gateway(opts: &PgConnectOptions) -> (TestCloud, Gateway, RunningAgent, FwDevice) {
    let cloud = TestCloud::start(opts).await;
    let gw = Gateway::init_local();
    cloud.enroll(&gw, common::SCHOOL);
    gw.set("sync", "heartbeat_s", "1");
    let bundle = gw.add("btn-1", "button", "B-214");
    let agent = gw.run_agent("").await;
    let button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 1).await;
    (cloud, gw, agent, button)
}

/// Every series the gateway and the cloud promise, scraped from the real processes after a
/// press reached Postgres: the connected button, the press counted and its alert triggered,
/// the outbox drained by the sync, the sync and engine latencies observed; on the cloud, the
/// batch and its records ingested, the pool, SSE connections (none) and the gateway online.
#[sqlx::test(migrations = false)]
async fn a_press_and_its_sync_show_in_both_services_metrics(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (cloud, _gw, agent, mut button) = enrolled_gateway(&opts).await;
    button.press(PressPattern::Single, 1).await;
    assert_eq!(
        button.press_ack(WAIT).await.unwrap().state,
        AckState::Received
    );
    cloud
        .wait_for("SELECT state FROM alerts", WAIT, |rows: &[(String,)]| {
            !rows.is_empty()
        })
        .await;
    // A request through the API first, so its route has a latency series.
    assert_eq!(agent.get("/api/v1/alerts").await.0, 200);

    // The acknowledgement is applied by the engine just after the cloud's commit: wait for
    // the backlog to reach 0 rather than race it.
    let url = format!("http://{}/metrics", agent.http);
    let deadline = Instant::now() + WAIT;
    let (edge, text) = loop {
        let (samples, text) = scrape(&url).await;
        let backlog = value(
            &samples,
            "hallwatch_edge_outbox_backlog_records",
            &[("lane", "alert")],
        );
        if backlog == 0.0 {
            break (samples, text);
        }
        assert!(
            Instant::now() < deadline,
            "the alert lane never drained:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let edge_value = |name: &str, labels: &[(&str, &str)]| value(&edge, name, labels);
    assert_eq!(
        edge_value("hallwatch_edge_connected_devices", &[("kind", "button")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        edge_value("hallwatch_edge_connected_devices", &[("kind", "camera")]),
        0.0
    );
    assert_eq!(
        edge_value("hallwatch_edge_connected_integrations", &[]),
        0.0
    );
    assert_eq!(
        edge_value(
            "hallwatch_edge_uplinks_received_total",
            &[("kind", "button_press")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        edge_value("hallwatch_edge_alerts", &[("state", "triggered")]),
        1.0
    );
    assert_eq!(
        edge_value("hallwatch_edge_alerts", &[("state", "acknowledged")]),
        0.0
    );
    for lane in ["alert", "telemetry"] {
        // Present for both lanes; the alert lane is empty, so its oldest record has no age.
        edge_value("hallwatch_edge_outbox_backlog_bytes", &[("lane", lane)]);
        edge_value(
            "hallwatch_edge_outbox_oldest_age_seconds",
            &[("lane", lane)],
        );
    }
    assert_eq!(
        edge_value(
            "hallwatch_edge_outbox_oldest_age_seconds",
            &[("lane", "alert")]
        ),
        0.0
    );
    assert_eq!(edge_value("hallwatch_edge_dead_letters", &[]), 0.0);
    assert!(
        edge_value(
            "hallwatch_edge_sync_request_seconds_count",
            &[("lane", "alert"), ("outcome", "acked")]
        ) >= 1.0,
        "{text}"
    );
    assert!(edge_value("hallwatch_edge_engine_batch_seconds_count", &[]) >= 1.0);
    assert_eq!(
        edge_value(
            "hallwatch_edge_http_request_seconds_count",
            &[
                ("route", "/api/v1/alerts"),
                ("method", "GET"),
                ("status", "2xx")
            ]
        ),
        1.0,
        "{text}"
    );

    // The cloud, on its metrics listener (loopback, its own port).
    let (samples, text) = scrape(&format!("http://127.0.0.1:{}/metrics", cloud.metrics)).await;
    let cloud_value = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
    assert!(
        cloud_value(
            "hallwatch_cloud_sync_batches_total",
            &[("lane", "alert"), ("outcome", "acked")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        cloud_value(
            "hallwatch_cloud_sync_records_ingested_total",
            &[("lane", "alert")]
        ) >= 1.0,
        "{text}"
    );
    assert!(cloud_value("hallwatch_cloud_db_pool_connections", &[]) >= 1.0);
    let idle = cloud_value("hallwatch_cloud_db_pool_idle_connections", &[]);
    let in_use = cloud_value("hallwatch_cloud_db_pool_in_use_connections", &[]);
    assert_eq!(
        idle + in_use,
        cloud_value("hallwatch_cloud_db_pool_connections", &[])
    );
    assert_eq!(cloud_value("hallwatch_cloud_sse_connections", &[]), 0.0);
    assert_eq!(
        cloud_value("hallwatch_cloud_gateways", &[("state", "online")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        cloud_value("hallwatch_cloud_gateways", &[("state", "offline")]),
        0.0
    );
    assert!(
        cloud_value(
            "hallwatch_cloud_http_request_seconds_count",
            &[
                ("listener", "sync"),
                ("route", "/api/v1/sync"),
                ("method", "POST"),
                ("status", "2xx")
            ]
        ) >= 1.0,
        "{text}"
    );

    // Not on the public listener, which the internet reaches.
    let public = http_client()
        .get(format!("{}/metrics", cloud.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
}

/// `/readyz` is 200 while the gateway works, 503 naming the engine while its loop is stuck
/// (the test holds SQLite's write lock, as the watchdog test does) and 200 again after.
#[tokio::test]
async fn readyz_names_a_stuck_engine_until_it_turns_again() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let agent = gw.run_agent("").await;
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 1).await;
    let readyz = || async {
        let response = http_client()
            .get(agent.url("/readyz"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, body) = readyz().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    for check in ["database", "engine", "device_listener"] {
        assert_eq!(body["checks"][check], "ok", "{body}");
    }
    // Alive is not ready: /healthz answers throughout.
    let healthz = http_client()
        .get(agent.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);

    let db = rusqlite::Connection::open(gw.data.join("edge.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    button.press(PressPattern::Single, 1).await;
    let deadline = Instant::now() + Duration::from_secs(9);
    let body = loop {
        let (status, body) = readyz().await;
        if status == 503 {
            break body;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < deadline,
            "/readyz stayed ready with the engine stuck:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["status"], "not ready");
    let engine = body["checks"]["engine"].as_str().unwrap();
    assert!(engine.contains("stuck"), "{body}");
    // The readers are not blocked by the writer's lock, nor is the device listener.
    assert_eq!(body["checks"]["database"], "ok", "{body}");
    assert_eq!(body["checks"]["device_listener"], "ok", "{body}");

    db.execute_batch("ROLLBACK").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while readyz().await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "never ready again:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The agent's stderr is a file here, not a terminal: every line is a JSON object, and the
/// lines about a request carry the id its answer did — the caller's when acceptable, else a
/// new one.
#[tokio::test]
async fn logs_are_json_lines_carrying_the_request_id_of_the_answer() {
    let gw = Gateway::init_local();
    let agent = gw.run_agent("").await;
    let client = http_client();
    let send = |id: Option<String>| {
        let mut request = client
            .get(agent.url("/api/v1/alerts"))
            .bearer_auth(&agent.token);
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let response = send(Some("install-check-42".into())).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "install-check-42");
    let mut ids = vec!["install-check-42".to_owned()];
    // No id, or one that is too long or not plain: the agent makes its own.
    for sent in [None, Some("x".repeat(65)), Some("a;b".to_owned())] {
        let response = send(sent.clone()).await.unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(Some(&id), sent.as_ref());
        assert_eq!(id.len(), 36, "a UUID: {id}");
        ids.push(id);
    }
    // A refusal is logged and echoed the same way.
    let refused = client
        .get(agent.url("/api/v1/alerts"))
        .header("x-request-id", "no-token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["x-request-id"], "no-token-1");
    ids.push("no-token-1".to_owned());

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = agent.log();
        let lines: Vec<Value> = log
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect();
        assert!(!lines.is_empty());
        for line in &lines {
            assert!(
                line["timestamp"].is_string() && line["level"].is_string(),
                "{line}"
            );
        }
        let done = |id: &str| {
            lines.iter().any(|l| {
                l["span"]["name"] == "request"
                    && l["span"]["id"] == id
                    && l["fields"]["message"] == "request done"
            })
        };
        if ids.iter().all(|id| done(id)) {
            let line = lines
                .iter()
                .find(|l| l["span"]["id"] == "no-token-1")
                .unwrap();
            assert_eq!(line["fields"]["status"], 401, "{line}");
            assert_eq!(line["span"]["route"], "/api/v1/alerts", "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "request lines missing:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
