//! The validation of `agent.toml`: what it accepts, what it refuses and with which field's
//! name, and that [`Config::to_toml`] reads back as the same configuration.

use std::time::Duration;

use super::*;

const GOOD: &str = "[school]\nid = \"lincoln-high\"\nname = \"Lincoln High\"\n";

fn field_of(err: ConfigError) -> String {
    match err {
        ConfigError::Invalid { field, .. } => field.to_owned(),
        other => other.to_string(),
    }
}

#[test]
fn defaults_fill_the_listeners() {
    let config = Config::parse(GOOD).unwrap();
    assert_eq!(config.mqtt_listen, DEFAULT_MQTT_LISTEN.parse().unwrap());
    assert_eq!(config.http_listen, DEFAULT_HTTP_LISTEN.parse().unwrap());
    assert_eq!(config.device_host(), None);
}

#[test]
fn written_config_reads_back_the_same() {
    let mut config = Config::parse(GOOD).unwrap();
    config.school_name = "St. \"Quoted\" School".into();
    config.hostnames = vec!["gw.local".into()];
    config.ips = vec!["10.0.0.2".parse().unwrap()];
    assert_eq!(Config::parse(&config.to_toml()).unwrap(), config);
    assert_eq!(config.device_host().as_deref(), Some("gw.local"));
}

#[test]
fn the_cloud_section_reads_back_and_names_a_bad_field() {
    const CLOUD: &str = "[cloud]\nurl = \"https://cloud.example.org\"\n\
                         sync_url = \"https://sync.example.org:8443\"\ngateway_id = \"gw-1\"\n";
    assert_eq!(Config::parse(GOOD).unwrap().cloud, None);
    let config = Config::parse(&format!("{GOOD}{CLOUD}")).unwrap();
    let cloud = config.cloud.clone().unwrap();
    assert_eq!(cloud.sync_url.as_str(), "https://sync.example.org:8443/");
    assert_eq!(Config::parse(&config.to_toml()).unwrap(), config);
    for (from, to, field) in [
        (
            "https://cloud.example.org",
            "http://cloud.example.org",
            "cloud.url",
        ),
        ("https://cloud.example.org", "not a url", "cloud.url"),
        (
            "https://sync.example.org:8443",
            "http://127.0.0.1:8443",
            "cloud.sync_url",
        ),
        ("gw-1", "gw/1", "cloud.gateway_id"),
    ] {
        let text = format!("{GOOD}{}", CLOUD.replace(from, to));
        assert_eq!(field_of(Config::parse(&text).unwrap_err()), field, "{to}");
    }
    let missing = format!("{GOOD}[cloud]\nurl = \"https://cloud.example.org\"\n");
    let err = Config::parse(&missing).unwrap_err().to_string();
    assert!(err.contains("sync_url"), "{err}");
}

#[test]
fn refuses_a_bad_school_id() {
    let err = Config::parse("[school]\nid = \"a/b\"\nname = \"X\"\n").unwrap_err();
    assert_eq!(field_of(err), "school.id");
}

#[test]
fn refuses_a_blank_or_long_school_name() {
    let err = Config::parse("[school]\nid = \"a\"\nname = \"  \"\n").unwrap_err();
    assert_eq!(field_of(err), "school.name");
    let long = format!("[school]\nid = \"a\"\nname = \"{}\"\n", "x".repeat(201));
    assert_eq!(field_of(Config::parse(&long).unwrap_err()), "school.name");
}

#[test]
fn refuses_a_bad_listen_address() {
    let text = format!("{GOOD}[mqtt]\nlisten = \"8883\"\n");
    assert_eq!(field_of(Config::parse(&text).unwrap_err()), "mqtt.listen");
    let text = format!("{GOOD}[http]\nlisten = \"nowhere:80\"\n");
    assert_eq!(field_of(Config::parse(&text).unwrap_err()), "http.listen");
}

#[test]
fn gate_limits_default_and_are_bounded() {
    assert_eq!(Config::parse(GOOD).unwrap().gate, GateLimits::default());
    let text = format!("{GOOD}[gate]\nmax_connections = 10\nhandshake_timeout_ms = 250\n");
    let gate = Config::parse(&text).unwrap().gate;
    assert_eq!(gate.max_connections, 10);
    assert_eq!(gate.handshake_timeout, Duration::from_millis(250));
    for (line, field) in [
        ("max_connections = 0", "gate.max_connections"),
        ("max_packet_bytes = 10", "gate.max_packet_bytes"),
        ("handshake_timeout_ms = 5", "gate.handshake_timeout_ms"),
        ("connect_timeout_ms = 600000", "gate.connect_timeout_ms"),
        ("max_pending = 100000", "gate.max_pending"),
        ("device_uplinks_per_s = 0", "gate.device_uplinks_per_s"),
        ("total_uplinks_per_s = 2000000", "gate.total_uplinks_per_s"),
    ] {
        let text = format!("{GOOD}[gate]\n{line}\n");
        assert_eq!(field_of(Config::parse(&text).unwrap_err()), field, "{line}");
    }
}

#[test]
fn sync_settings_default_and_are_bounded() {
    assert_eq!(Config::parse(GOOD).unwrap().sync, SyncSettings::default());
    let text = format!("{GOOD}[sync]\nbatch_max_records = 50\noutbox_budget_mb = 2\n");
    let sync = Config::parse(&text).unwrap().sync;
    assert_eq!(sync.batch_max_records, 50);
    assert_eq!(sync.outbox_budget_bytes, 2 * 1024 * 1024);
    for (lines, field) in [
        ("batch_max_records = 0", "sync.batch_max_records"),
        ("batch_max_records = 10001", "sync.batch_max_records"),
        ("batch_max_bytes = 100", "sync.batch_max_bytes"),
        ("batch_wait_ms = 60001", "sync.batch_wait_ms"),
        ("heartbeat_s = 0", "sync.heartbeat_s"),
        ("request_timeout_s = 601", "sync.request_timeout_s"),
        ("backoff_min_ms = 5", "sync.backoff_min_ms"),
        ("backoff_max_s = 0", "sync.backoff_max_s"),
        (
            "backoff_min_ms = 5000\nbackoff_max_s = 2",
            "sync.backoff_max_s",
        ),
        ("thin_after_s = 10", "sync.thin_after_s"),
        ("thin_keep_every_s = 0", "sync.thin_keep_every_s"),
        ("outbox_budget_mb = 0", "sync.outbox_budget_mb"),
    ] {
        let text = format!("{GOOD}[sync]\n{lines}\n");
        assert_eq!(
            field_of(Config::parse(&text).unwrap_err()),
            field,
            "{lines}"
        );
    }
    let text = format!("{GOOD}[sync]\nbatch_size = 10\n");
    assert!(
        Config::parse(&text)
            .unwrap_err()
            .to_string()
            .contains("batch_size")
    );
}

#[test]
fn refuses_a_bad_ip() {
    let text = format!("{GOOD}[gateway]\nips = [\"10.0.0.300\"]\n");
    assert_eq!(field_of(Config::parse(&text).unwrap_err()), "gateway.ips");
}

#[test]
fn refuses_unknown_fields_and_names_them() {
    let text = format!("{GOOD}[mqtt]\nlisten = \"0.0.0.0:1\"\nport = 1\n");
    let err = Config::parse(&text).unwrap_err().to_string();
    assert!(err.contains("port"), "{err}");
    let err = Config::parse(&format!("{GOOD}[extra]\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("extra"), "{err}");
}

#[test]
fn a_missing_file_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let err = Config::load(dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains(CONFIG_FILE), "{err}");
}
