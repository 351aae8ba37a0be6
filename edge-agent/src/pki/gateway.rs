//! The gateway's own identity towards the cloud: its P-256 key, the certificate signing
//! request `edge-agent enroll` sends, and the check of what the cloud sends back before any
//! of it is stored.

use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use shared::UnixMillis;
use shared::ids::SchoolId;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::PkiError;

/// The gateway's key for the cloud, in memory until enrollment succeeds.
pub struct GatewayKey {
    key: KeyPair,
}

impl std::fmt::Debug for GatewayKey {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayKey").finish_non_exhaustive()
    }
}

/// What the checked certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudCertificate {
    /// Its subject CN: the gateway id the cloud assigned.
    pub common_name: String,
    /// Its subject O: the school.
    pub organization: String,
    /// When it expires.
    pub not_after: UnixMillis,
}

impl GatewayKey {
    /// A fresh ECDSA P-256 key.
    pub fn generate() -> Result<GatewayKey, PkiError> {
        Ok(GatewayKey {
            key: KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        })
    }

    /// A PKCS#10 request for this key, PEM. The cloud uses only its public key; the subject
    /// (CN "Hallwatch gateway {school}") is for people reading logs.
    pub fn csr_pem(&self, school: &SchoolId) -> Result<String, PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("Hallwatch gateway {school}"));
        params.distinguished_name = dn;
        Ok(params.serialize_request(&self.key)?.pem()?)
    }

    /// The private key, PKCS#8 PEM. Write it with [`super::write_key_file`] or a 0600 file.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Checks the certificate the cloud issued for this key: it chains to `ca_pem` as the
    /// cloud's sync listener will check it (rustls' client-certificate verifier: signature,
    /// validity now, client-auth usage), and it certifies this key and no other.
    pub fn check_certificate(
        &self,
        cert_pem: &str,
        ca_pem: &str,
    ) -> Result<CloudCertificate, PkiError> {
        let invalid = |reason: String| PkiError::Invalid {
            what: "the cloud's certificate",
            reason,
        };
        let ca = one_certificate(ca_pem).map_err(|e| invalid(format!("its CA: {e}")))?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(format!("not PEM: {e}")))?;
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(invalid("no certificate in the answer".into()));
        };

        let mut roots = RootCertStore::empty();
        roots
            .add(ca)
            .map_err(|e| invalid(format!("its CA cannot be used: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| invalid(format!("its CA cannot be used: {e}")))?;
        verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| {
                invalid(format!(
                    "it does not verify against the CA sent with it: {e}"
                ))
            })?;

        let (_, cert) = X509Certificate::from_der(leaf)
            .map_err(|e| invalid(format!("cannot be parsed: {e}")))?;
        if cert.public_key().raw != self.key.subject_public_key_info().as_slice() {
            return Err(invalid(
                "it certifies another key than this gateway's".into(),
            ));
        }
        let text = |attr: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>, what: &str| {
            attr.and_then(|a| a.as_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("it has no {what}")))
        };
        let subject = cert.subject();
        Ok(CloudCertificate {
            common_name: text(subject.iter_common_name().next(), "common name")?,
            organization: text(subject.iter_organization().next(), "organization")?,
            not_after: UnixMillis::new(cert.validity().not_after.timestamp().saturating_mul(1000)),
        })
    }
}

fn one_certificate(pem: &str) -> Result<CertificateDer<'static>, String> {
    let mut certs = CertificateDer::pem_slice_iter(pem.as_bytes());
    match (certs.next(), certs.next()) {
        (Some(Ok(cert)), None) => Ok(cert),
        (None, _) => Err("no certificate".into()),
        (Some(Err(e)), _) => Err(format!("not PEM: {e}")),
        (Some(Ok(_)), Some(_)) => Err("more than one certificate".into()),
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, Issuer,
    };

    use super::*;

    /// A CA like the cloud's, and a certificate for `csr` signed by it.
    fn cloud_signs(csr: &str, eku: ExtendedKeyUsagePurpose) -> (String, String) {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let mut csr = CertificateSigningRequestParams::from_pem(csr).unwrap();
        csr.params.distinguished_name = DistinguishedName::new();
        csr.params
            .distinguished_name
            .push(DnType::CommonName, "gw-7");
        csr.params
            .distinguished_name
            .push(DnType::OrganizationName, "lincoln-high");
        csr.params.extended_key_usages = vec![eku];
        (csr.signed_by(&issuer).unwrap().pem(), ca_pem)
    }

    #[test]
    fn a_certificate_for_this_key_from_the_ca_is_accepted() {
        let key = GatewayKey::generate().unwrap();
        let csr = key.csr_pem(&"lincoln-high".parse().unwrap()).unwrap();
        let (cert, ca) = cloud_signs(&csr, ExtendedKeyUsagePurpose::ClientAuth);
        let checked = key.check_certificate(&cert, &ca).unwrap();
        assert_eq!(checked.common_name, "gw-7");
        assert_eq!(checked.organization, "lincoln-high");
        assert!(checked.not_after > UnixMillis::now());
        assert!(key.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn another_key_another_ca_or_a_server_certificate_is_refused() {
        let key = GatewayKey::generate().unwrap();
        let school = "lincoln-high".parse().unwrap();
        let other = GatewayKey::generate().unwrap();
        let (cert, ca) = cloud_signs(
            &other.csr_pem(&school).unwrap(),
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let err = key.check_certificate(&cert, &ca).unwrap_err().to_string();
        assert!(err.contains("another key"), "{err}");

        let csr = key.csr_pem(&school).unwrap();
        let (cert, _) = cloud_signs(&csr, ExtendedKeyUsagePurpose::ClientAuth);
        let (_, other_ca) = cloud_signs(&csr, ExtendedKeyUsagePurpose::ClientAuth);
        let err = key
            .check_certificate(&cert, &other_ca)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not verify"), "{err}");

        let (cert, ca) = cloud_signs(&csr, ExtendedKeyUsagePurpose::ServerAuth);
        assert!(key.check_certificate(&cert, &ca).is_err());
        assert!(key.check_certificate("", &ca).is_err());
        assert!(key.check_certificate(&cert, "").is_err());
    }
}
