//! `agent.toml` and its `HALLWATCH_<SECTION>_<FIELD>` variables: every field is documented in
//! docs/configuration.md with its variable, every variable sets its field, and the real
//! binary refuses each kind of bad variable with exit status 64 and the variable's name,
//! before it binds anything.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output};

use common::{Gateway, read, s};
use edge_agent::config::env::{NOT_OVERRIDABLE, OVERRIDABLE, var_name};
use edge_agent::config::{Config, ConfigError};

const CLOUD: &str = "\n[cloud]\nurl = \"https://cloud.example.org\"\n\
                     sync_url = \"https://sync.example.org:8443\"\ngateway_id = \"gw-1\"\n";
const ROOM: &str = "\n[[rooms]]\nid = \"A-101\"\nbuilding = \"A\"\nfloor = \"1\"\ncapacity = 30\n";

/// A gateway whose agent.toml has every section, rooms and `[cloud]` included.
fn full_gateway() -> Gateway {
    let gw = Gateway::init();
    let path = gw.data.join("agent.toml");
    let text = format!("{}{ROOM}{CLOUD}", read(&path));
    std::fs::write(&path, text).unwrap();
    gw
}

/// Every `(section, field)` of an agent.toml that has them all.
fn fields(gw: &Gateway) -> Vec<(String, String)> {
    let table: toml::Table = toml::from_str(&read(&gw.data.join("agent.toml"))).unwrap();
    let mut found = Vec::new();
    for (section, value) in table {
        let entries = match value {
            toml::Value::Table(t) => t,
            toml::Value::Array(rooms) => rooms[0].as_table().unwrap().clone(),
            other => panic!("{section} = {other}"),
        };
        for field in entries.keys() {
            found.push((section.clone(), field.clone()));
        }
    }
    found
}

fn docs() -> String {
    read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"))
}

/// The part of docs/configuration.md under `### ...[section]...`, up to the next heading.
fn doc_section<'a>(docs: &'a str, section: &str) -> &'a str {
    let heading = docs
        .lines()
        .find(|line| line.starts_with("### ") && line.contains(&format!("[{section}]")))
        .unwrap_or_else(|| panic!("docs/configuration.md has no heading for [{section}]"));
    let start = docs.find(heading).unwrap() + heading.len();
    let rest = &docs[start..];
    &rest[..rest.find("\n#").unwrap_or(rest.len())]
}

#[test]
fn every_field_is_documented_with_its_variable_or_why_it_has_none() {
    let gw = full_gateway();
    let docs = docs();
    let all = fields(&gw);
    assert!(all.len() > 40, "{all:?}");
    for (section, field) in &all {
        let part = doc_section(&docs, section);
        let row = part
            .lines()
            .find(|line| {
                line.starts_with(&format!("| `{field}` |"))
                    || line.starts_with(&format!("| `[{section}] {field}` |"))
            })
            .unwrap_or_else(|| panic!("[{section}] {field} is not in docs/configuration.md"));
        let path = format!("{section}.{field}");
        let overridable = OVERRIDABLE
            .iter()
            .any(|(s, f, _)| *s == section && *f == field);
        let refused = NOT_OVERRIDABLE
            .iter()
            .any(|(p, _)| *p == path || *p == section.as_str());
        assert!(
            overridable != refused,
            "{path}: overridable or not, exactly one (env.rs)"
        );
        if overridable {
            assert!(row.contains(&format!("`{}`", var_name(&path))), "{row}");
        } else {
            assert!(row.contains("not overridable"), "{row}");
        }
    }
    for (section, field, _) in OVERRIDABLE {
        assert!(
            all.iter().any(|(s, f)| s == section && f == field),
            "env.rs overrides {section}.{field}, which agent.toml does not have"
        );
    }
}

#[test]
fn every_variable_sets_its_field() {
    let gw = full_gateway();
    let table: toml::Table = toml::from_str(&read(&gw.data.join("agent.toml"))).unwrap();
    let base = Config::load_with_env(&gw.data, []).unwrap();
    // Each variable, set to the file's own value, is accepted and changes nothing.
    for (section, field, _) in OVERRIDABLE {
        let value = &table[*section][*field];
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join(","),
            other => panic!("{other}"),
        };
        let var = var_name(&format!("{section}.{field}"));
        let config = Config::load_with_env(&gw.data, vars(&[(&var, &text)]))
            .unwrap_or_else(|e| panic!("{var}={text}: {e}"));
        assert_eq!(config, base, "{var}={text}");
    }
    // And a different value replaces the file's.
    let config = Config::load_with_env(
        &gw.data,
        vars(&[
            ("HALLWATCH_SYNC_BACKOFF_MAX_S", "20"),
            (
                "HALLWATCH_GATEWAY_HOSTNAMES",
                "gw2.lincoln.local, gw3.lincoln.local",
            ),
            ("HALLWATCH_HTTP_LISTEN", "127.0.0.1:18080"),
            ("HALLWATCH_ALERTS_PRESS_MAP", "single=fire"),
            ("HALLWATCH_SCHOOL_NAME", "Lincoln High (annex)"),
        ]),
    )
    .unwrap();
    assert_eq!(config.sync.backoff_max.as_secs(), 20);
    assert_eq!(config.hostnames, ["gw2.lincoln.local", "gw3.lincoln.local"]);
    assert_eq!(config.http_listen, "127.0.0.1:18080".parse().unwrap());
    assert_ne!(config.alerts.press_map, base.alerts.press_map);
    assert_eq!(config.school_name, "Lincoln High (annex)");
    assert_eq!(config.sync.heartbeat, base.sync.heartbeat);
}

#[test]
fn a_variable_is_held_to_the_bounds_of_its_field() {
    let gw = Gateway::init();
    for (var, value, reason) in [
        ("HALLWATCH_SYNC_HEARTBEAT_S", "0", "outside 1..=300"),
        ("HALLWATCH_MQTT_LISTEN", "8883", "not an address:port"),
        ("HALLWATCH_GATEWAY_IPS", "10.0.0.300", "not an IP address"),
        ("HALLWATCH_GATE_MAX_PENDING", "5000", "outside 1..=4000"),
        ("HALLWATCH_ALERTS_PRESS_MAP", "single=party", "party"),
        ("HALLWATCH_SCHOOL_NAME", " ", "must not be empty"),
    ] {
        let err = Config::load_with_env(&gw.data, vars(&[(var, value)])).unwrap_err();
        let ConfigError::EnvInvalid {
            var: got,
            reason: why,
            ..
        } = &err
        else {
            panic!("{var}={value}: {err}")
        };
        assert_eq!(got, var);
        assert!(why.contains(reason), "{var}={value}: {err}");
    }
    // A field the variable does not touch keeps the file's name in its error.
    gw.set("sync", "heartbeat_s", "0");
    let err = Config::load_with_env(&gw.data, vars(&[("HALLWATCH_SYNC_BACKOFF_MAX_S", "20")]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                field: "sync.heartbeat_s",
                ..
            }
        ),
        "{err}"
    );
    // And the variable mends it.
    Config::load_with_env(&gw.data, vars(&[("HALLWATCH_SYNC_HEARTBEAT_S", "10")])).unwrap();
}

/// `edge-agent run` refuses each bad variable with 64 before binding: the dashboard's port
/// is held by this test, and the error is the variable's, not the port's.
#[test]
fn run_refuses_each_bad_variable_with_status_64_naming_it() {
    let gw = Gateway::init();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http = held.local_addr().unwrap().to_string();
    for (var, value, says) in [
        ("HALLWATCH_SYNC_HEARTBEAT_S", "0", "outside 1..=300"),
        ("HALLWATCH_SYNC_HEARTBEAT_S", "ten", "not a whole number"),
        (
            "HALLWATCH_SYNC_BACKOF_MAX_S",
            "2",
            "HALLWATCH_SYNC_BACKOFF_MAX_S",
        ),
        ("HALLWATCH_SCHOOL_ID", "other-school", "every certificate"),
        ("HALLWATCH_ROOMS_CAPACITY", "30", "[[rooms]]"),
        ("HALLWATCH_HEALTH_BATTERY_LOW_MV", "70000", "above 65535"),
    ] {
        let out = agent(
            &["run", "--data-dir", s(&gw.data)],
            &[
                (var, value),
                ("HALLWATCH_HTTP_LISTEN", &http),
                ("HALLWATCH_MQTT_LISTEN", "127.0.0.1:0"),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{var}={value}: {stderr}");
        assert!(
            stderr.contains(var) && stderr.contains(says),
            "{var}={value}: {stderr}"
        );
        assert!(!stderr.contains("in use"), "{stderr}");
    }
}

/// Through the binary, a variable takes effect: `device add` writes the overriding host into
/// the bundle; other programs' `HALLWATCH_*` variables are left alone.
#[test]
fn device_add_uses_the_overriding_hostname() {
    let gw = Gateway::init();
    let out_dir = gw.tmp.path().join("btn");
    let out = agent(
        &gw.add_args("btn-1", "button", "A-101", &out_dir),
        &[
            ("HALLWATCH_GATEWAY_HOSTNAMES", "gw2.lincoln.local"),
            ("HALLWATCH_CLOUD_POOL_SIZE", "3"),
            ("HALLWATCH_ENROLL_TOKEN", "hwe_unused"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let nvs = read(&out_dir.join("nvs.csv"));
    assert!(nvs.contains("gw2.lincoln.local"), "{nvs}");
    assert!(!nvs.contains("gw.lincoln.local,"), "{nvs}");
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

fn agent(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}
