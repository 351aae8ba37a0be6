//! `edge-agent init`, run as the real binary: the files it writes, their modes, the CA and
//! server certificate, and its refusals.

mod common;

use common::{Gateway, SCHOOL, fails, mode, ok, pem_der, read, s, server_accepts};
use edge_agent::config::Config;

const FILES: &[&str] = &[
    "agent.toml",
    "edge.db",
    "ca.pem",
    "ca.key",
    "server.pem",
    "server.key",
];

#[test]
fn init_writes_every_file_with_private_keys_0600() {
    let gw = Gateway::init();
    for file in FILES {
        assert!(gw.data.join(file).is_file(), "{file} missing");
    }
    assert_eq!(mode(&gw.data.join("ca.key")), 0o600);
    assert_eq!(mode(&gw.data.join("server.key")), 0o600);
    let config = Config::load(&gw.data).unwrap();
    assert_eq!(config.school_id.as_str(), SCHOOL);
    assert_eq!(config.school_name, "Lincoln High");
    assert_eq!(config.hostnames, vec!["gw.lincoln.local".to_owned()]);
    assert_eq!(
        config.ips,
        vec!["10.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(config.mqtt_listen.port(), 8883);
    assert!(
        read(&gw.data.join("agent.toml")).starts_with('#'),
        "agent.toml has comments"
    );
    assert_eq!(
        gw.list().lines().count(),
        1,
        "only the header: no devices yet"
    );
}

#[test]
fn the_ca_is_a_p256_ca_for_the_school_with_path_length_zero() {
    let gw = Gateway::init();
    let der = pem_der(&read(&gw.data.join("ca.pem")));
    let (_, ca) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn = ca
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(cn, format!("Hallwatch gateway CA {SCHOOL}"));
    let o = ca
        .subject()
        .iter_organization()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(o, SCHOOL);
    let bc = ca.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = ca.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
    let years = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp())
        / (365 * 24 * 3600);
    assert_eq!(years, 20);
    let key = read(&gw.data.join("ca.key"));
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    // id-ecPublicKey with the P-256 curve.
    let algo = &ca.public_key().algorithm;
    assert_eq!(algo.algorithm.to_id_string(), "1.2.840.10045.2.1");
}

#[test]
fn the_server_certificate_names_every_hostname_and_ip() {
    let gw = Gateway::init();
    assert!(server_accepts(&gw.data, "gw.lincoln.local"));
    assert!(server_accepts(&gw.data, "10.0.0.2"));
    assert!(!server_accepts(&gw.data, "other.local"));
    assert!(!server_accepts(&gw.data, "localhost"));
}

#[test]
fn without_names_the_server_certificate_is_for_localhost() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("gw");
    let args = [
        "init",
        "--data-dir",
        s(&data),
        "--school-id",
        "s1",
        "--school-name",
        "S",
    ];
    ok(&args);
    assert!(server_accepts(&data, "localhost"));
    assert!(server_accepts(&data, "127.0.0.1"));
}

#[test]
fn a_second_init_is_refused_and_changes_nothing() {
    let gw = Gateway::init();
    let before: Vec<Vec<u8>> = FILES
        .iter()
        .map(|f| std::fs::read(gw.data.join(f)).unwrap())
        .collect();
    let args = [
        "init",
        "--data-dir",
        s(&gw.data),
        "--school-id",
        "other",
        "--school-name",
        "X",
    ];
    let (code, err) = fails(&args);
    assert_eq!(code, 1);
    assert!(err.contains("already initialised"), "{err}");
    for (file, bytes) in FILES.iter().zip(before) {
        assert_eq!(
            std::fs::read(gw.data.join(file)).unwrap(),
            bytes,
            "{file} changed"
        );
    }
}

#[test]
fn bad_arguments_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("gw");
    let dir = s(&data);
    for (flag, value) in [
        ("--school-id", "no/slash"),
        ("--school-name", "   "),
        ("--ip", "10.0.0.300"),
        ("--hostname", "bad host"),
        ("--mqtt-listen", "8883"),
    ] {
        let mut args = vec![
            "init",
            "--data-dir",
            dir,
            "--school-id",
            "s",
            "--school-name",
            "S",
        ];
        args.extend([flag, value]);
        let (code, err) = fails(&args);
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag}: {err}");
        assert!(!data.exists(), "{flag} {value} created the data dir");
    }
}

#[test]
fn a_broken_config_is_a_usage_error_naming_the_field() {
    let gw = Gateway::init();
    let path = gw.data.join("agent.toml");
    let text = read(&path).replace("0.0.0.0:8883", "not-an-address");
    std::fs::write(&path, text).unwrap();
    let (code, err) = fails(&["device", "list", "--data-dir", s(&gw.data)]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("mqtt.listen"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let (code, err) = fails(&["device", "list", "--data-dir", s(tmp.path())]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("agent.toml"), "{err}");
}

#[test]
fn status_refuses_a_missing_or_broken_config_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, err) = fails(&["status", "--data-dir", s(tmp.path())]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("agent.toml"), "{err}");

    let gw = Gateway::init();
    gw.set("sync", "heartbeat_s", "0");
    let (code, err) = fails(&["status", "--data-dir", s(&gw.data)]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("sync.heartbeat_s"), "{err}");
}
