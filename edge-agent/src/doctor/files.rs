//! The data directory's certificates, keys and CRL: present, parseable, which CA issued
//! them, and how long they have left.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use x509_parser::prelude::{FromDer, X509Certificate};

use super::{Check, EXPIRY_WARNING_DAYS, date, days_left};
use crate::config::Config;
use crate::enroll::{CLOUD_CA_FILE, GATEWAY_CERT_FILE, GATEWAY_KEY_FILE};
use crate::install::{CRL_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE};
use crate::pki::Ca;

/// The certificate checks, in order.
pub(super) fn check(dir: &Path, config: &Config) -> Vec<Check> {
    let now = shared::UnixMillis::now().get() / 1000;
    let mut checks = Vec::new();
    let ca = certificate(
        "gateway CA",
        dir,
        Ca::CERT_FILE,
        None,
        now,
        "restore ca.pem from a backup (`edge-agent restore`); without it no device can connect",
    );
    let ca_subject = ca.1.clone();
    checks.push(ca.0);
    checks.push(key("gateway CA key", dir, Ca::KEY_FILE));
    checks.push(
        certificate(
            "server certificate",
            dir,
            SERVER_CERT_FILE,
            ca_subject.as_deref(),
            now,
            "restore server.pem from a backup; devices refuse a gateway without a valid one",
        )
        .0,
    );
    checks.push(key("server key", dir, SERVER_KEY_FILE));
    checks.push(crl(dir, ca_subject.as_deref()));
    if config.cloud.is_none() {
        checks.push(Check::warn(
            "cloud certificate",
            "the gateway is not enrolled with a cloud",
            "enroll it: `edge-agent enroll` (or `edge-agent setup`)",
        ));
        return checks;
    }
    let cloud_ca = certificate(
        "cloud CA",
        dir,
        CLOUD_CA_FILE,
        None,
        now,
        "enroll again: `edge-agent enroll --force` with a new token",
    );
    let cloud_subject = cloud_ca.1.clone();
    checks.push(cloud_ca.0);
    checks.push(
        certificate(
            "cloud certificate",
            dir,
            GATEWAY_CERT_FILE,
            cloud_subject.as_deref(),
            now,
            "enroll again: `edge-agent enroll --force` with a new token \
             (`cloud-sync admin create-token`)",
        )
        .0,
    );
    checks.push(key("cloud key", dir, GATEWAY_KEY_FILE));
    checks
}

/// A certificate file's check, and its subject (when it parsed) for its children's issuer
/// check.
fn certificate(
    name: &'static str,
    dir: &Path,
    file: &str,
    issuer: Option<&str>,
    now: i64,
    fix: &str,
) -> (Check, Option<String>) {
    let path = dir.join(file);
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(e) => {
            return (
                Check::fail(name, format!("{} cannot be read: {e}", path.display()), fix),
                None,
            );
        }
    };
    let der = match x509_parser::pem::parse_x509_pem(&pem) {
        Ok((_, pem)) => pem.contents,
        Err(e) => {
            return (
                Check::fail(name, format!("{} is not PEM: {e}", path.display()), fix),
                None,
            );
        }
    };
    let cert = match X509Certificate::from_der(&der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            return (
                Check::fail(
                    name,
                    format!("{} is not a certificate: {e}", path.display()),
                    fix,
                ),
                None,
            );
        }
    };
    let subject = cert.subject().to_string();
    let validity = cert.validity();
    let not_after = validity.not_after.timestamp();
    let left = days_left(not_after, now);
    let check = if let Some(issuer) = issuer.filter(|i| *i != cert.issuer().to_string()) {
        Check::fail(
            name,
            format!("{file} was issued by {}, not by {issuer}", cert.issuer()),
            fix,
        )
    } else if validity.not_before.timestamp() > now {
        Check::fail(
            name,
            format!(
                "{file} is not valid before {} (is the clock right?)",
                date(validity.not_before.timestamp())
            ),
            "set the clock (timedatectl set-ntp true)",
        )
    } else if not_after <= now {
        Check::fail(name, format!("{file} expired on {}", date(not_after)), fix)
    } else if left < EXPIRY_WARNING_DAYS {
        Check::warn(
            name,
            format!("{file} expires on {} ({left} days left)", date(not_after)),
            fix,
        )
    } else {
        Check::ok(
            name,
            format!("{file} valid until {} ({left} days left)", date(not_after)),
        )
    };
    (check, Some(subject))
}

/// A private key file: present and readable by its owner only.
fn key(name: &'static str, dir: &Path, file: &str) -> Check {
    let path = dir.join(file);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => Check::warn(
            name,
            format!(
                "{file} is readable by others (mode {:o})",
                meta.permissions().mode() & 0o777
            ),
            format!("chmod 600 {}", path.display()),
        ),
        Ok(_) => Check::ok(name, format!("{file} present, mode 0600")),
        Err(e) => Check::fail(
            name,
            format!("{} cannot be read: {e}", path.display()),
            "restore the data directory from a backup (`edge-agent restore`)",
        ),
    }
}

/// The CRL: absent (nothing revoked yet), or a CRL the gateway CA issued.
fn crl(dir: &Path, ca_subject: Option<&str>) -> Check {
    const NAME: &str = "CRL";
    let path = dir.join(CRL_FILE);
    let fix = "revoke a device again to rewrite it (`edge-agent device revoke`), or restore it \
               from a backup";
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::ok(NAME, "no crl.pem: no device or integration revoked yet");
        }
        Err(e) => return Check::fail(NAME, format!("{} cannot be read: {e}", path.display()), fix),
    };
    let parsed = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| e.to_string())
        .and_then(|(_, pem)| {
            x509_parser::parse_x509_crl(&pem.contents)
                .map(|(_, crl)| {
                    (
                        crl.issuer().to_string(),
                        crl.iter_revoked_certificates().count(),
                        crl.crl_number().map(ToString::to_string),
                    )
                })
                .map_err(|e| e.to_string())
        });
    match parsed {
        Err(e) => Check::fail(NAME, format!("crl.pem is not a CRL: {e}"), fix),
        Ok((issuer, _, _)) if ca_subject.is_some_and(|s| s != issuer) => Check::fail(
            NAME,
            format!("crl.pem was issued by {issuer}, not by the gateway CA"),
            fix,
        ),
        Ok((_, revoked, number)) => Check::ok(
            NAME,
            format!(
                "crl.pem number {}, {revoked} certificate(s) revoked",
                number.unwrap_or_else(|| "?".into())
            ),
        ),
    }
}
