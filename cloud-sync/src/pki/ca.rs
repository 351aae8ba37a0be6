//! [`GatewayCa`]: the CA that signs gateway client certificates and the sync listener's
//! server certificate. ECDSA P-256 throughout.
//!
//! The CA is created in the data directory on first start (`gateway-ca.pem`, and
//! `gateway-ca.key` with mode 0600) and reused afterwards. The sync listener's server
//! certificate is issued afresh at each start and kept in memory only: gateways trust the CA,
//! not the leaf.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use shared::ids::{GatewayId, SchoolId};
use time::OffsetDateTime;

use super::PkiError;

const CA_CERT_FILE: &str = "gateway-ca.pem";
const CA_KEY_FILE: &str = "gateway-ca.key";
const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Gateway certificates last a year; renewal comes with the gateway's sync (#6).
const GATEWAY_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
const SERVER_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Tolerates gateways whose clocks run a little behind.
const BACKDATE: Duration = Duration::from_secs(300);

/// The gateway CA, loaded or created.
#[derive(Debug)]
pub struct GatewayCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate issued to a gateway at enrollment.
#[derive(Debug, Clone)]
pub struct IssuedGateway {
    /// The client certificate, PEM.
    pub cert_pem: String,
    /// Its serial number, hex, for the gateways table.
    pub serial_hex: String,
}

/// The sync listener's certificate and key, DER.
#[derive(Debug)]
pub struct ServerCert {
    /// The leaf certificate.
    pub cert_der: Vec<u8>,
    /// Its PKCS#8 key.
    pub key_der: Vec<u8>,
}

impl GatewayCa {
    /// Loads the CA from `dir`, creating it (and `dir`) on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, PkiError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        if cert_path.exists() {
            let cert_pem = read(&cert_path)?;
            let key = KeyPair::from_pem(&read(&key_path)?)?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
            return Ok(Self { cert_pem, issuer });
        }
        fs::create_dir_all(dir).map_err(io_error(dir.to_path_buf()))?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("Hallwatch gateway CA", None);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, CA_VALIDITY)?;
        let cert = params.self_signed(&key)?;
        // Key first, so a crash in between never leaves a certificate without its key.
        write_private(&key_path, &key.serialize_pem())?;
        fs::write(&cert_path, cert.pem()).map_err(io_error(cert_path))?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM: gateways trust it for the sync listener.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Signs a gateway's CSR. Only the CSR's public key is used: the subject (CN = gateway
    /// id, O = school id), the client-auth usage and the validity are the cloud's.
    pub fn sign_gateway(
        &self,
        csr_pem: &str,
        school: &SchoolId,
        gateway: &GatewayId,
    ) -> Result<IssuedGateway, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(PkiError::BadCsr)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(gateway.as_str(), Some(school.as_str()));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial()?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        validity(&mut params, GATEWAY_VALIDITY)?;
        let request = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        };
        let cert = request.signed_by(&self.issuer)?;
        Ok(IssuedGateway {
            cert_pem: cert.pem(),
            serial_hex: hex::encode(serial),
        })
    }

    /// A fresh server certificate for the sync listener, valid for `names` (DNS names or IP
    /// addresses).
    pub fn server_cert(&self, names: &[String]) -> Result<ServerCert, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = name("Hallwatch sync", None);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, SERVER_VALIDITY)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerCert {
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        })
    }
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    dn
}

fn validity(params: &mut CertificateParams, lifetime: Duration) -> Result<(), PkiError> {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
    Ok(())
}

/// 16 random bytes, the first in 0x40..=0x7f so the DER integer is positive and minimal.
fn random_serial() -> Result<[u8; 16], PkiError> {
    let mut serial = [0u8; 16];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| PkiError::Random)?;
    serial[0] = (serial[0] & 0x3f) | 0x40;
    Ok(serial)
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io_error(path.to_path_buf()))
}

fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path.to_path_buf()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_error(path.to_path_buf()))
}

fn io_error(path: PathBuf) -> impl FnOnce(std::io::Error) -> PkiError {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}
