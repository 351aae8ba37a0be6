//! The gateway's own certificate authority: the CA itself, the gateway's server certificate,
//! device and integration certificates and the CRL. No network, no SQL: serials and CRL numbers come in from
//! the store, PEM text goes out. Also the gateway's key towards the cloud (`gateway`): its CSR
//! for enrollment and the check of the certificate the cloud returns.
//!
//! This is the only module that uses rcgen.
//!
//! # Validity periods
//!
//! - CA: 20 years. Replacing the CA means re-provisioning every device in the school, so it
//!   should outlive the hardware.
//! - Gateway server certificate: 5 years, re-issued with the appliance.
//! - Device certificates: 5 years, about the service life of a battery-powered button.
//! - Integration certificates: 5 years, like devices; revoke and re-add to replace one.
//! - Every `not_before` is set one hour in the past, so a device or gateway whose clock is a
//!   little behind does not see a freshly issued certificate as "not yet valid".

mod ca;
mod crl;
mod gateway;
mod issue;
mod keyfile;

use std::path::PathBuf;
use std::time::Duration;

use shared::UnixMillis;
use time::OffsetDateTime;

pub use ca::Ca;
pub use crl::{Revoked, crl_pem};
pub use gateway::{CloudCertificate, GatewayKey};
pub use issue::{IssuedCert, device_cert, integration_cert, server_cert};
pub use keyfile::write_key_file;

const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// How long the gateway CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 60 * 60);
/// How long the gateway's server certificate is valid.
pub const SERVER_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 60 * 60);
/// How long a device certificate is valid.
pub const DEVICE_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 60 * 60);
/// How long an integration's certificate is valid.
pub const INTEGRATION_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 60 * 60);
/// How long a CRL says it stays current. It is rewritten on every revocation; a long
/// `nextUpdate` keeps an appliance that sees no revocation for years from ever holding a
/// "stale" CRL.
pub const CRL_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 60 * 60);

/// The period a certificate is valid for, as stored with it in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First instant of validity.
    pub not_before: UnixMillis,
    /// Last instant of validity.
    pub not_after: UnixMillis,
}

impl Validity {
    /// Valid from an hour before `now` (clock skew) until `now + length`.
    pub fn starting(now: UnixMillis, length: Duration) -> Self {
        let not_before = UnixMillis::new(now.get().saturating_sub(millis(BACKDATE)));
        Validity {
            not_before,
            not_after: now.saturating_add(length),
        }
    }
}

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("time {0} is outside the range a certificate can carry")]
    TimeOutOfRange(UnixMillis),
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn to_offset(t: UnixMillis) -> Result<OffsetDateTime, PkiError> {
    // Certificates carry whole seconds.
    t.to_utc().ok_or(PkiError::TimeOutOfRange(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_backdated_an_hour() {
        let now = UnixMillis::new(10 * 24 * 3600 * 1000);
        let v = Validity::starting(now, Duration::from_secs(86_400));
        assert_eq!(now.get() - v.not_before.get(), 3600 * 1000);
        assert_eq!(v.not_after.get() - now.get(), 24 * 3600 * 1000);
    }
}
