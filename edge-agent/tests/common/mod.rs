//! Helpers for tests that run the real `edge-agent` binary in temporary directories.

#![allow(dead_code)]
// Each test binary uses a different subset of these helpers.
// Test helpers are not `#[test]` functions, so clippy.toml's allow-unwrap-in-tests does not
// reach them; failing loudly is exactly what a helper should do.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

pub(crate) mod agent;
pub(crate) mod browser;
pub(crate) mod button;
pub(crate) mod cloud;
pub(crate) mod delivery;
pub(crate) mod device;
pub(crate) mod fleet;
pub(crate) mod net;
pub(crate) mod postgres;
pub(crate) mod proxy;

pub(crate) const SCHOOL: &str = "lincoln-high";

/// Runs `edge-agent` with `args`.
pub(crate) fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the edge-agent binary runs")
}

/// Runs `edge-agent` and insists that it succeeds; returns its stdout.
pub(crate) fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "edge-agent {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `edge-agent`, insists that it fails, returns (exit code, stderr).
pub(crate) fn fails(args: &[&str]) -> (i32, String) {
    let out = run(args);
    assert!(!out.status.success(), "edge-agent {args:?} succeeded");
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

pub(crate) fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A temp dir holding an initialised gateway in `gw/`.
pub(crate) struct Gateway {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) data: PathBuf,
}

impl Gateway {
    /// A gateway named as on a school network (`gw.lincoln.local`, `10.0.0.2`).
    pub(crate) fn init() -> Gateway {
        Gateway::init_named("gw.lincoln.local", "10.0.0.2")
    }

    /// A gateway whose server certificate names `localhost` and `127.0.0.1`, for tests that
    /// connect to it.
    pub(crate) fn init_local() -> Gateway {
        Gateway::init_named("localhost", "127.0.0.1")
    }

    fn init_named(hostname: &str, ip: &str) -> Gateway {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("gw");
        ok(&[
            "init",
            "--data-dir",
            s(&data),
            "--school-id",
            SCHOOL,
            "--school-name",
            "Lincoln High",
            "--hostname",
            hostname,
            "--ip",
            ip,
        ]);
        Gateway { tmp, data }
    }

    /// Starts this gateway in-process, its device listener on a free loopback port.
    pub(crate) async fn start(&self) -> edge_agent::Gateway {
        let mut config = edge_agent::config::Config::load(&self.data).unwrap();
        config.mqtt_listen = "127.0.0.1:0".parse().unwrap();
        edge_agent::Gateway::start(&config, &self.data)
            .await
            .unwrap()
    }

    /// `device add` into `tmp/<id>`; returns the bundle directory.
    pub(crate) fn add(&self, id: &str, kind: &str, room: &str) -> PathBuf {
        let out = self.tmp.path().join(id);
        ok(&self.add_args(id, kind, room, &out));
        out
    }

    pub(crate) fn add_args<'a>(
        &'a self,
        id: &'a str,
        kind: &'a str,
        room: &'a str,
        out: &'a Path,
    ) -> Vec<&'a str> {
        vec![
            "device",
            "add",
            "--data-dir",
            s(&self.data),
            "--id",
            id,
            "--kind",
            kind,
            "--room",
            room,
            "--out",
            s(out),
        ]
    }

    pub(crate) fn list(&self) -> String {
        ok(&["device", "list", "--data-dir", s(&self.data)])
    }

    pub(crate) fn revoke(&self, id: &str) -> String {
        ok(&["device", "revoke", "--data-dir", s(&self.data), "--id", id])
    }
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The verifier the device gate will use: the gateway CA, optionally with its CRL.
pub(crate) fn client_verifier(ca_pem: &str, crl_pem: Option<&str>) -> Arc<dyn ClientCertVerifier> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    if let Some(crl) = crl_pem {
        builder = builder
            .with_crls([CertificateRevocationListDer::from_pem_slice(crl.as_bytes()).unwrap()]);
    }
    builder.build().unwrap()
}

/// Verifies a device certificate as the gate would.
pub(crate) fn verify_client(
    verifier: &dyn ClientCertVerifier,
    cert_pem: &str,
) -> Result<(), rustls::Error> {
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    verifier
        .verify_client_cert(&cert, &[], UnixTime::now())
        .map(|_| ())
}

/// A certificate's serial as a number.
pub(crate) fn serial_of(raw: &[u8]) -> u64 {
    raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// The DER inside a PEM file.
pub(crate) fn pem_der(pem: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    pem.contents
}

/// Whether a device that trusts the gateway CA accepts its server certificate for `name`.
pub(crate) fn server_accepts(gw: &std::path::Path, name: &str) -> bool {
    let mut roots = RootCertStore::empty();
    let ca = read(&gw.join("ca.pem"));
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let cert = CertificateDer::from_pem_slice(read(&gw.join("server.pem")).as_bytes()).unwrap();
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    verifier
        .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
        .is_ok()
}

/// A certificate for `device` from this gateway's CA that expired a year ago: (cert, key).
pub(crate) fn expired_device_cert(gw: &Gateway, device: &str) -> (PathBuf, PathBuf) {
    let year = 365 * 24 * 3600 * 1000;
    let now = shared::UnixMillis::now().get();
    let validity = edge_agent::pki::Validity {
        not_before: shared::UnixMillis::new(now - 2 * year),
        not_after: shared::UnixMillis::new(now - year),
    };
    issue_device_cert(gw, device, 999_999, validity, &format!("{device}-expired"))
}

/// A certificate for `device` from this gateway's CA that becomes valid only in a day:
/// (cert, key).
pub(crate) fn future_device_cert(gw: &Gateway, device: &str) -> (PathBuf, PathBuf) {
    let day = 24 * 3600 * 1000;
    let now = shared::UnixMillis::now().get();
    let validity = edge_agent::pki::Validity {
        not_before: shared::UnixMillis::new(now + day),
        not_after: shared::UnixMillis::new(now + 2 * day),
    };
    issue_device_cert(gw, device, 777_777, validity, &format!("{device}-future"))
}

/// A currently valid certificate for `device` from the gateway's CA, without registering it.
pub(crate) fn unregistered_device_cert(
    gw: &Gateway,
    device: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let now = shared::UnixMillis::now();
    let validity = edge_agent::pki::Validity::starting(now, std::time::Duration::from_secs(3_600));
    issue_device_cert(gw, device, 888_888, validity, device)
}

/// A certificate for `device` from the gateway's CA with `serial` and `validity`, written to
/// `tmp/{stem}.pem` and `.key` without registering anything: (cert, key).
fn issue_device_cert(
    gw: &Gateway,
    device: &str,
    serial: u64,
    validity: edge_agent::pki::Validity,
    stem: &str,
) -> (PathBuf, PathBuf) {
    let ca = edge_agent::pki::Ca::load(&gw.data).unwrap();
    let school = SCHOOL.parse().unwrap();
    let issued =
        edge_agent::pki::device_cert(&ca, &school, &device.parse().unwrap(), serial, validity)
            .unwrap();
    let cert = gw.tmp.path().join(format!("{stem}.pem"));
    let key = gw.tmp.path().join(format!("{stem}.key"));
    std::fs::write(&cert, issued.cert_pem).unwrap();
    std::fs::write(&key, issued.key_pem).unwrap();
    (cert, key)
}
