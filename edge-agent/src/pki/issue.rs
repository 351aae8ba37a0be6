//! End-entity certificates signed by the gateway CA: the gateway's TLS server certificate, one
//! client certificate per device and one per integration.

use std::net::IpAddr;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use shared::ids::{DeviceId, SchoolId};

use super::{Ca, PkiError, Validity, to_offset};
use crate::integration::{INTEGRATION_OU, IntegrationId};

/// A freshly issued certificate and its private key, both PEM.
pub struct IssuedCert {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8). Write it with [`super::write_key_file`].
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert").finish_non_exhaustive()
    }
}

/// The gateway's TLS server certificate: ServerAuth, with every hostname and IP address as a
/// subject alternative name (devices verify the name they connect to against these).
pub fn server_cert(
    ca: &Ca,
    school: &SchoolId,
    hostnames: &[String],
    ips: &[IpAddr],
    serial: u64,
    validity: Validity,
) -> Result<IssuedCert, PkiError> {
    let mut sans = Vec::with_capacity(hostnames.len() + ips.len());
    for host in hostnames {
        let name = host.as_str().try_into().map_err(|_| PkiError::Invalid {
            what: "hostname",
            reason: format!("{host:?} is not a DNS name"),
        })?;
        sans.push(SanType::DnsName(name));
    }
    sans.extend(ips.iter().copied().map(SanType::IpAddress));
    let common_name = match hostnames.first() {
        Some(host) => host.clone(),
        None => format!("Hallwatch gateway {school}"),
    };
    let mut params = end_entity(common_name, school, serial, validity)?;
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    issue(ca, &params)
}

/// A device's client certificate: CN is the device id, O the school id, ClientAuth only.
pub fn device_cert(
    ca: &Ca,
    school: &SchoolId,
    device: &DeviceId,
    serial: u64,
    validity: Validity,
) -> Result<IssuedCert, PkiError> {
    let mut params = end_entity(device.to_string(), school, serial, validity)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    issue(ca, &params)
}

/// An integration's client certificate: CN is the integration id, O the school id, and OU
/// [`INTEGRATION_OU`], which is what tells the gate it is an integration and not a device
/// (device certificates have no OU); ClientAuth only.
pub fn integration_cert(
    ca: &Ca,
    school: &SchoolId,
    integration: &IntegrationId,
    serial: u64,
    validity: Validity,
) -> Result<IssuedCert, PkiError> {
    let mut params = end_entity(integration.to_string(), school, serial, validity)?;
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, INTEGRATION_OU);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    issue(ca, &params)
}

fn end_entity(
    common_name: String,
    school: &SchoolId,
    serial: u64,
    validity: Validity,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, school.as_str());
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_before = to_offset(validity.not_before)?;
    params.not_after = to_offset(validity.not_after)?;
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn issue(ca: &Ca, params: &CertificateParams) -> Result<IssuedCert, PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, ca.issuer())?;
    Ok(IssuedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
