//! The gateway CA: created once by `init`, loaded from `ca.pem` and `ca.key` afterwards.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use shared::ids::SchoolId;

use super::{PkiError, Validity, to_offset};

/// The gateway's certificate authority: its certificate and the key that signs with it.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for Ca {
    // The signing key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA for `school`: ECDSA P-256, may sign certificates and CRLs, and no
    /// intermediate below it (path length 0).
    pub fn create(school: &SchoolId, serial: u64, validity: Validity) -> Result<Ca, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("Hallwatch gateway CA {school}"));
        dn.push(DnType::OrganizationName, school.as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = to_offset(validity.not_before)?;
        params.not_after = to_offset(validity.not_after)?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
        })
    }

    /// Loads the CA written by [`Ca::write`] from `dir`.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| PkiError::Io { path, source })
        };
        let cert_pem = read(Self::CERT_FILE)?;
        let key = KeyPair::from_pem(&read(Self::KEY_FILE)?)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Ca { issuer, cert_pem })
    }

    /// Writes `ca.pem` and `ca.key` (mode 0600) into `dir`; neither may exist yet.
    pub fn write(&self, dir: &Path) -> Result<(), PkiError> {
        super::write_key_file(&dir.join(Self::KEY_FILE), &self.key_pem())?;
        let path = dir.join(Self::CERT_FILE);
        crate::files::write_new(&path, self.cert_pem.as_bytes())
            .map_err(|source| PkiError::Io { path, source })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's file names inside the data directory (see `layout`).
    pub const CERT_FILE: &'static str = crate::layout::CA_CERT_FILE;
    /// See [`Ca::CERT_FILE`].
    pub const KEY_FILE: &'static str = crate::layout::CA_KEY_FILE;

    pub(super) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }
}
