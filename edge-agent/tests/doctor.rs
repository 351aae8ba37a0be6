//! `edge-agent doctor` on a gateway enrolled with a real cloud (`cloud-sync serve` on
//! PostgreSQL): all ok while the agent runs and syncs; warnings only once it stops; and each
//! broken part — an expired or missing certificate, a corrupt database, a port taken by
//! another process, the cloud down — failing its own check with its message and exit
//! status 1.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cloud::TestCloud;
use common::{Gateway, SCHOOL, run, s};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// `doctor --json`: (exit code, name → (status, detail, fix)).
fn doctor(gw: &Gateway) -> (i32, Vec<(String, String, String, String)>) {
    let out = run(&["doctor", "--data-dir", s(&gw.data), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["detail"].as_str().unwrap().to_owned(),
                c["fix"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    (out.status.code().unwrap(), checks)
}

fn find<'a>(
    checks: &'a [(String, String, String, String)],
    name: &str,
) -> &'a (String, String, String, String) {
    checks
        .iter()
        .find(|c| c.0 == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
}

/// Asserts that exactly the checks `failing` fail (with `detail` in their detail and a fix)
/// and that doctor exits 1.
fn fails_with(gw: &Gateway, failing: &[(&str, &str)]) {
    let (code, checks) = doctor(gw);
    assert_eq!(code, 1, "{checks:#?}");
    for (name, detail) in failing {
        let check = find(&checks, name);
        assert_eq!(check.1, "fail", "{check:?}");
        assert!(check.2.contains(detail), "{name}: {check:?}");
        assert!(!check.3.is_empty(), "{name} has no fix: {check:?}");
    }
    let others: Vec<_> = checks
        .iter()
        .filter(|c| c.1 == "fail" && !failing.iter().any(|f| f.0 == c.0))
        .collect();
    assert!(others.is_empty(), "unexpected failures: {others:?}");
}

/// Moves `file` aside for the duration of `f`.
fn without(dir: &Path, file: &str, replace: Option<&[u8]>, f: impl FnOnce()) {
    let path = dir.join(file);
    let aside = dir.join(format!("{file}.aside"));
    std::fs::rename(&path, &aside).unwrap();
    if let Some(bytes) = replace {
        std::fs::write(&path, bytes).unwrap();
    }
    f();
    let _ = std::fs::remove_file(&path);
    std::fs::rename(&aside, &path).unwrap();
}

#[sqlx::test(migrations = false)]
async fn doctor_finds_a_healthy_gateway_healthy_and_names_each_broken_part(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let mut cloud = TestCloud::start(&opts).await;
    let gw = Gateway::init_local();
    cloud.enroll(&gw, SCHOOL);
    gw.set("sync", "heartbeat_s", "1");
    let mut agent = gw.run_agent("").await;

    // Healthy, running, synced: every check ok.
    let deadline = Instant::now() + Duration::from_secs(30);
    let checks = loop {
        let (code, checks) = doctor(&gw);
        if checks.iter().all(|c| c.1 == "ok") {
            assert_eq!(code, 0);
            break checks;
        }
        assert!(Instant::now() < deadline, "not all ok: {checks:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let names: Vec<&str> = checks.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "configuration",
            "gateway CA",
            "gateway CA key",
            "server certificate",
            "server key",
            "CRL",
            "cloud CA",
            "cloud certificate",
            "cloud key",
            "agent",
            "database",
            "disk space",
            "device listener",
            "dashboard listener",
            "cloud",
            "clock",
            "last sync",
        ]
    );
    assert!(
        find(&checks, "device listener")
            .2
            .contains("bound by the running agent")
    );
    assert!(find(&checks, "cloud").2.contains("certificate accepted"));
    let human = run(&["doctor", "--data-dir", s(&gw.data)]);
    let text = String::from_utf8(human.stdout).unwrap();
    println!("{text}");
    assert!(text.contains("ok    server certificate:"), "{text}");
    assert!(text.ends_with("17 ok, 0 warnings, 0 failed\n"), "{text}");

    // Stopped: warnings (agent, last sync), no failure; the ports are free for it.
    let (_, exit) = agent.terminate();
    assert!(exit.success());
    let (code, checks) = doctor(&gw);
    assert_eq!(code, 0, "{checks:#?}");
    assert_eq!(find(&checks, "agent").1, "warn");
    assert_eq!(find(&checks, "last sync").1, "warn");
    assert!(
        find(&checks, "device listener")
            .2
            .contains("free for the agent")
    );

    // A port taken by another process.
    let squatter = std::net::TcpListener::bind(agent.mqtt).unwrap();
    fails_with(&gw, &[("device listener", "taken by another process")]);
    drop(squatter);

    // An expired server certificate, issued by the gateway's own CA.
    let expired = {
        use edge_agent::pki::{Ca, Validity, server_cert};
        let ca = Ca::load(&gw.data).unwrap();
        let year = 365 * 24 * 3600 * 1000;
        let now = shared::UnixMillis::now().get();
        let validity = Validity {
            not_before: shared::UnixMillis::new(now - 2 * year),
            not_after: shared::UnixMillis::new(now - year),
        };
        server_cert(
            &ca,
            &SCHOOL.parse().unwrap(),
            &["localhost".to_owned()],
            &["127.0.0.1".parse().unwrap()],
            777,
            validity,
        )
        .unwrap()
        .cert_pem
    };
    without(&gw.data, "server.pem", Some(expired.as_bytes()), || {
        fails_with(&gw, &[("server certificate", "server.pem expired on")]);
    });
    // The cloud certificate missing: the cloud cannot be reached with it either.
    without(&gw.data, "gateway.pem", None, || {
        fails_with(
            &gw,
            &[
                ("cloud certificate", "gateway.pem cannot be read"),
                ("cloud", "cannot be reached"),
            ],
        );
    });
    // A corrupt database.
    without(&gw.data, "edge.db", Some(&[0x55; 8192]), || {
        fails_with(&gw, &[("database", "edge.db")]);
    });
    // The cloud down.
    cloud.kill();
    fails_with(&gw, &[("cloud", "cannot be reached")]);
    let (_, checks) = doctor(&gw);
    assert_eq!(find(&checks, "clock").1, "warn");
    cloud.restart().await;
    let (code, _) = doctor(&gw);
    assert_eq!(code, 0);
    cloud.stop().await;
}
