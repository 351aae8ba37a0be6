//! The gateway's certificate revocation list, signed by its CA.

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use shared::UnixMillis;

use super::{CRL_VALIDITY, Ca, PkiError, to_offset};

/// One revoked certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// The certificate's serial.
    pub serial: u64,
    /// When it was revoked.
    pub at: UnixMillis,
}

/// A CRL listing every certificate in `revoked`, numbered `number` (which must grow with each
/// CRL the gateway writes), issued `now`.
pub fn crl_pem(
    ca: &Ca,
    number: u64,
    revoked: &[Revoked],
    now: UnixMillis,
) -> Result<String, PkiError> {
    let revoked_certs = revoked
        .iter()
        .map(|r| {
            Ok(RevokedCertParams {
                serial_number: SerialNumber::from(r.serial),
                revocation_time: to_offset(r.at)?,
                reason_code: None,
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>, PkiError>>()?;
    let params = CertificateRevocationListParams {
        this_update: to_offset(now)?,
        next_update: to_offset(now.saturating_add(CRL_VALIDITY))?,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(ca.issuer())?.pem()?)
}
