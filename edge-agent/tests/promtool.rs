//! Both services' `/metrics` under Prometheus' own linter: `promtool check metrics` (Debian's
//! `prometheus` package, which `cargo xtask test` installs; without it the test fails, never
//! skips) reads what a real `edge-agent run` and a real `cloud-sync serve` answer after a press
//! was synced, so that every family has its series, and finds nothing to say.
//!
//! promtool reads Prometheus' text format, which the services answer in when asked for it
//! (`Accept: text/plain`); what they answer by default is OpenMetrics, whose counters that
//! format's parser sees as series without HELP, as the last check shows.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Gateway;
use common::agent::http_client;
use common::button::FwDevice;
use common::cloud::TestCloud;
use firmware_protocol::{AckState, PressPattern};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const WAIT: Duration = Duration::from_secs(15);

#[sqlx::test(migrations = false)]
async fn both_services_metrics_pass_promtool_check_metrics(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let gw = Gateway::init_local();
    cloud.enroll(&gw, common::SCHOOL);
    gw.set("sync", "heartbeat_s", "1");
    let bundle = gw.add("btn-1", "button", "B-214");
    let agent = gw.run_agent("").await;
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 1).await;
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
    assert_eq!(agent.get("/api/v1/alerts").await.0, 200);

    let edge = format!("http://{}/metrics", agent.http);
    let cloud_metrics = format!("http://127.0.0.1:{}/metrics", cloud.metrics);
    for (url, family) in [
        (&edge, "hallwatch_edge_uplinks_received_total"),
        (&cloud_metrics, "hallwatch_cloud_sync_batches_total"),
    ] {
        let (content_type, text) = scrape(url, "text/plain; version=0.0.4").await;
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(
            text.contains(&format!("\n# TYPE {family} counter\n")),
            "{url}:\n{text}"
        );
        let out = promtool(&text);
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool on {url}: {}\n{}{}\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // promtool can fail: the default answer, OpenMetrics, is not its format.
    let (content_type, text) = scrape(&edge, "*/*").await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let out = promtool(&text);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("hallwatch_edge_uplinks_received_total no help text"),
        "{out:?}"
    );
}

/// The body and content type of `GET url` with `Accept: accept`.
async fn scrape(url: &str, accept: &str) -> (String, String) {
    let response = http_client()
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

/// `promtool check metrics` with `text` on its standard input.
fn promtool(text: &str) -> Output {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool (Debian's prometheus; cargo xtask test installs it): {e}")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
