//! `edge-agent enroll` as an installer runs it, against a real `cloud-sync serve` on a real
//! PostgreSQL (`DATABASE_URL`; see tests/common/cloud.rs): the files it writes, the
//! certificate the cloud signed, and every refusal, each of which leaves the data directory
//! as it was.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;

use common::cloud::{TestCloud, free_port};
use common::{Gateway, SCHOOL, client_verifier, mode, pem_der, read, run, s, verify_client};
use edge_agent::config::{Config, SyncSettings};
use edge_agent::sync::{Outcome, SyncClient};
use shared::ids::{Epoch, Seq};
use shared::sync::{Lane, SyncBatch};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const WRITTEN: [&str; 4] = ["gateway.key", "gateway.pem", "cloud-ca.pem", "agent.toml"];

fn enroll(gw: &Gateway, cloud: &str, sync: &str, token: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "enroll",
        "--data-dir",
        s(&gw.data),
        "--cloud",
        cloud,
        "--sync-url",
        sync,
        "--token",
        token,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "enroll failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// (exit code, stderr) of a refusal.
fn refused(out: &Output) -> (i32, String) {
    assert!(!out.status.success(), "enroll succeeded: {out:?}");
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr.clone()).unwrap(),
    )
}

/// Every file in `dir` with its content, to show that a refusal changed nothing.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

fn subject(cert_pem: &str) -> (String, String) {
    let der = pem_der(cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let field = |attr: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>| {
        attr.unwrap().as_str().unwrap().to_owned()
    };
    (
        field(cert.subject().iter_common_name().next()),
        field(cert.subject().iter_organization().next()),
    )
}

#[sqlx::test(migrations = false)]
async fn enroll_stores_a_key_a_certificate_from_the_cloud_ca_and_the_cloud_section(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let token = cloud.school(SCHOOL);
    let gw = Gateway::init();
    let config_before = read(&gw.data.join("agent.toml"));

    let out = stdout(&enroll(&gw, &cloud.url(), &cloud.sync_url(), &token, &[]));
    let gateways = cloud.gateways().await;
    assert_eq!(gateways.len(), 1);
    let (school, gateway_id) = &gateways[0];
    assert_eq!(school, SCHOOL);
    assert!(
        out.starts_with(&format!(
            "Enrolled {} for school {SCHOOL} as gateway {gateway_id}.\n",
            gw.data.display()
        )),
        "{out}"
    );
    for file in WRITTEN {
        let path = gw.data.join(file);
        assert!(
            out.contains(&format!("  wrote {}\n", path.display())),
            "{out}"
        );
    }
    assert_eq!(mode(&gw.data.join("gateway.key")), 0o600);
    for public in ["gateway.pem", "cloud-ca.pem", "agent.toml"] {
        assert_eq!(mode(&gw.data.join(public)) & 0o022, 0, "{public}");
    }
    assert!(
        !contents(&gw.data).keys().any(|name| name.ends_with(".tmp")),
        "no temporary file is left"
    );

    // The certificate is the cloud's, for this gateway's key, and verifies against the CA
    // the cloud keeps in its data directory as the sync listener verifies clients.
    let cert = read(&gw.data.join("gateway.pem"));
    assert_eq!(read(&gw.data.join("cloud-ca.pem")), cloud.ca_pem());
    verify_client(&*client_verifier(&cloud.ca_pem(), None), &cert).unwrap();
    assert_eq!(subject(&cert), (gateway_id.clone(), SCHOOL.to_owned()));
    let key = rcgen::KeyPair::from_pem(&read(&gw.data.join("gateway.key"))).unwrap();
    let der = pem_der(&cert);
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        parsed.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );

    // agent.toml keeps what the installer had and gains [cloud].
    let config_after = read(&gw.data.join("agent.toml"));
    assert!(config_after.starts_with(config_before.trim_end()));
    let settings = Config::load(&gw.data).unwrap().cloud.unwrap();
    assert_eq!(settings.gateway_id.as_str(), gateway_id);
    assert_eq!(settings.url.as_str(), format!("{}/", cloud.url()));
    assert_eq!(settings.sync_url.as_str(), format!("{}/", cloud.sync_url()));

    // What was stored is what the sync loop needs: its client, with gateway.pem and
    // gateway.key and trusting cloud-ca.pem only, gets a heartbeat acknowledged.
    let client = SyncClient::new(
        &gw.data,
        &settings.sync_url,
        &settings.gateway_id,
        &SyncSettings::default(),
    )
    .unwrap();
    let batch = SyncBatch {
        gateway_id: settings.gateway_id.clone(),
        school_id: SCHOOL.parse().unwrap(),
        epoch: Epoch::new(7).unwrap(),
        lane: Lane::Alert,
        records: vec![],
    };
    match client.send(&batch).await {
        Outcome::Acked(ack) => assert_eq!(ack.acked_through, Seq::ZERO),
        other => panic!("the heartbeat was not acknowledged: {other:?}"),
    }
    cloud.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_reused_a_guessed_and_an_expired_token_are_refused_with_the_clouds_words(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let token = cloud.school(SCHOOL);
    let first = Gateway::init();
    stdout(&enroll(
        &first,
        &cloud.url(),
        &cloud.sync_url(),
        &token,
        &[],
    ));

    let gw = Gateway::init();
    let before = contents(&gw.data);
    let guessed = "hwe_0123456789abcdef0123456789abcdef01234567";
    let expired = cloud.token(SCHOOL);
    cloud.expire_tokens(SCHOOL).await;
    for (token, words) in [
        (token.as_str(), "already enrolled a gateway"),
        (guessed, "not valid"),
        (expired.as_str(), "expired"),
    ] {
        let (code, stderr) = refused(&enroll(&gw, &cloud.url(), &cloud.sync_url(), token, &[]));
        assert_eq!(code, 77, "{stderr}");
        assert!(stderr.contains("the cloud refused the token"), "{stderr}");
        assert!(stderr.contains(words), "{stderr}");
        assert!(!stderr.contains(token), "the token is not echoed: {stderr}");
        assert_eq!(contents(&gw.data), before, "nothing written");
    }
    assert_eq!(cloud.gateways().await.len(), 1);
    cloud.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_enrolled_gateway_is_refused_unless_forced_and_force_replaces_everything(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let gw = Gateway::init();
    stdout(&enroll(
        &gw,
        &cloud.url(),
        &cloud.sync_url(),
        &cloud.school(SCHOOL),
        &[],
    ));
    let old_gateway = Config::load(&gw.data).unwrap().cloud.unwrap().gateway_id;
    let before = contents(&gw.data);

    let token = cloud.token(SCHOOL);
    let (code, stderr) = refused(&enroll(&gw, &cloud.url(), &cloud.sync_url(), &token, &[]));
    assert_eq!(code, 73, "{stderr}");
    assert!(
        stderr.contains(&format!("already enrolled as gateway {old_gateway}")),
        "{stderr}"
    );
    for replaced in [
        "--force",
        "gateway.key",
        "gateway.pem",
        "cloud-ca.pem",
        "[cloud]",
    ] {
        assert!(stderr.contains(replaced), "{replaced}: {stderr}");
    }
    assert_eq!(contents(&gw.data), before, "nothing written");

    // The refusal came before the cloud was asked, so the same token still works.
    let out = stdout(&enroll(
        &gw,
        &cloud.url(),
        &cloud.sync_url(),
        &token,
        &["--force"],
    ));
    let new_gateway = Config::load(&gw.data).unwrap().cloud.unwrap().gateway_id;
    assert_ne!(new_gateway, old_gateway);
    assert!(out.contains(&format!("(was {old_gateway})")), "{out}");
    let after = contents(&gw.data);
    for file in ["gateway.key", "gateway.pem"] {
        assert_ne!(after[file], before[file], "{file} replaced");
    }
    assert_eq!(mode(&gw.data.join("gateway.key")), 0o600);
    let config = read(&gw.data.join("agent.toml"));
    assert_eq!(config.matches("[cloud]").count(), 1, "{config}");
    let cert = read(&gw.data.join("gateway.pem"));
    assert_eq!(subject(&cert).0, new_gateway.as_str());
    verify_client(&*client_verifier(&cloud.ca_pem(), None), &cert).unwrap();

    // Leftovers of an interrupted enrollment (no [cloud] yet) also need --force.
    let fresh = Gateway::init();
    std::fs::write(fresh.data.join("gateway.pem"), "left over").unwrap();
    let (code, stderr) = refused(&enroll(
        &fresh,
        &cloud.url(),
        &cloud.sync_url(),
        "hwe_x",
        &[],
    ));
    assert_eq!(code, 73, "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    cloud.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_token_for_another_school_is_refused_and_nothing_is_written(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let token = cloud.school("oak-primary");
    let gw = Gateway::init();
    let before = contents(&gw.data);
    let (code, stderr) = refused(&enroll(&gw, &cloud.url(), &cloud.sync_url(), &token, &[]));
    assert_eq!(code, 76, "{stderr}");
    assert!(
        stderr.contains("belongs to school oak-primary")
            && stderr.contains(&format!("initialised for school {SCHOOL}"))
            && stderr.contains("create-token"),
        "{stderr}"
    );
    assert_eq!(contents(&gw.data), before);
    cloud.stop().await;
}

#[test]
fn an_unreachable_cloud_is_named() {
    let gw = Gateway::init();
    let before = contents(&gw.data);
    // Plain http is fine on any loopback address, IPv4 or IPv6.
    for url in [
        format!("http://127.0.0.1:{}", free_port()),
        format!("http://127.0.0.2:{}", free_port()),
        format!("http://[::1]:{}", free_port()),
    ] {
        let (code, stderr) = refused(&enroll(&gw, &url, "https://localhost:8443", "hwe_x", &[]));
        assert_eq!(code, 69, "{stderr}");
        assert!(
            stderr.contains(&format!("cannot reach the cloud at {url}/")),
            "{stderr}"
        );
    }
    assert_eq!(contents(&gw.data), before);
}

#[test]
fn plain_http_is_refused_except_on_loopback_and_sync_must_be_https() {
    let gw = Gateway::init();
    let before = contents(&gw.data);
    for (cloud, sync, words) in [
        (
            "http://cloud.example.org",
            "https://sync.example.org",
            "loopback",
        ),
        (
            "http://10.0.0.1:8080",
            "https://sync.example.org",
            "127.0.0.0/8",
        ),
        (
            "http://localhost:8080",
            "https://sync.example.org",
            "plain http",
        ),
        (
            "ftp://cloud.example.org",
            "https://sync.example.org",
            "https://",
        ),
        (
            "https://cloud.example.org",
            "http://127.0.0.1:8443",
            "mutual TLS",
        ),
    ] {
        let (code, stderr) = refused(&enroll(&gw, cloud, sync, "hwe_x", &[]));
        assert_eq!(code, 2, "a bad flag is a usage error: {stderr}");
        assert!(stderr.contains(words), "{cloud} {sync}: {stderr}");
    }
    assert_eq!(contents(&gw.data), before);
}

#[test]
fn an_uninitialised_data_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gw");
    let out = run(&[
        "enroll",
        "--data-dir",
        s(&dir),
        "--cloud",
        "http://127.0.0.1:9",
        "--sync-url",
        "https://localhost:8443",
        "--token",
        "hwe_x",
    ]);
    let (code, stderr) = refused(&out);
    assert_eq!(code, 66, "{stderr}");
    assert!(stderr.contains("edge-agent init"), "{stderr}");
    assert!(!dir.exists(), "nothing created");
}

#[test]
fn an_oversized_or_foreign_answer_is_refused_and_nothing_is_written() {
    let gw = Gateway::init();
    let before = contents(&gw.data);
    // 1 MiB without Content-Length, then a small answer that is not the cloud's.
    for (answer, code, words) in [
        (
            format!(
                "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{}",
                "x".repeat(1 << 20)
            ),
            76,
            "larger than 65536 bytes",
        ),
        (
            "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found"
                .to_owned(),
            76,
            "not the cloud's error format",
        ),
        (
            "HTTP/1.1 308 Permanent Redirect\r\nlocation: http://elsewhere.example/\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
                .to_owned(),
            76,
            "redirects to http://elsewhere.example/",
        ),
    ] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || answer_once(&listener, &answer));
        let (exit, stderr) = refused(&enroll(&gw, &url, "https://localhost:8443", "hwe_x", &[]));
        server.join().unwrap();
        assert_eq!(exit, code, "{stderr}");
        assert!(stderr.contains(words), "{stderr}");
    }
    assert_eq!(contents(&gw.data), before);
}

/// Reads one whole request (so closing the socket does not reset it), answers `answer`.
fn answer_once(listener: &std::net::TcpListener, answer: &str) {
    let (mut socket, _) = listener.accept().unwrap();
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).unwrap();
        assert!(n > 0, "the request ended early");
        request.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if request.len() >= end + 4 + length {
                break;
            }
        }
    }
    // The client stops reading an oversized answer and hangs up: that write fails.
    if socket.write_all(answer.as_bytes()).is_ok() {
        let _ = socket.shutdown(std::net::Shutdown::Write);
        let _ = socket.read_to_end(&mut request);
    }
}

#[test]
fn a_bad_cloud_section_in_agent_toml_exits_64_naming_the_field() {
    let gw = Gateway::init();
    let path = gw.data.join("agent.toml");
    let good = read(&path);
    for (section, field) in [
        (
            "[cloud]\nurl = \"http://cloud.example.org\"\nsync_url = \"https://s.example.org\"\ngateway_id = \"gw-1\"\n",
            "cloud.url",
        ),
        (
            "[cloud]\nurl = \"https://cloud.example.org\"\nsync_url = \"s.example.org\"\ngateway_id = \"gw-1\"\n",
            "cloud.sync_url",
        ),
    ] {
        std::fs::write(&path, format!("{good}\n{section}")).unwrap();
        let (code, stderr) = refused(&run(&["run", "--data-dir", s(&gw.data)]));
        assert_eq!(code, 64, "{stderr}");
        assert!(stderr.contains(field), "{stderr}");
    }
}
