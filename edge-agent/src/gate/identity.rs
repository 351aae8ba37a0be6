//! Who is on the other end of a TLS connection: a device or an integration, with its school
//! and serial, taken from its verified client certificate. The certificate is the only source
//! of identity; nothing a client sends later can change it.
//!
//! Both kinds of certificate have CN = id and O = school. An integration's also has exactly
//! one OU, [`INTEGRATION_OU`]; a device's has none. Any other OU is refused, so no certificate
//! is ever read as the other kind.

use rustls::pki_types::CertificateDer;
use shared::ids::{DeviceId, SchoolId};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::integration::{INTEGRATION_OU, IntegrationId};

/// A verified client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub(super) role: Role,
    pub(super) school_id: SchoolId,
    /// The certificate's serial, big-endian bytes as in the certificate.
    pub(super) serial: Vec<u8>,
}

/// What the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Role {
    /// A button or camera: publishes to `d/{id}/up`, reads `d/{id}/down`.
    Device(DeviceId),
    /// A strobe, PA or signage client: reads `hallwatch/…`, publishes nothing.
    Integration(IntegrationId),
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Device(id) => write!(f, "device {id}"),
            Role::Integration(id) => write!(f, "integration {id}"),
        }
    }
}

impl Identity {
    /// Reads the identity from the leaf certificate the TLS handshake verified.
    pub(super) fn from_cert(cert: &CertificateDer<'_>) -> Result<Identity, String> {
        let (_, cert) = X509Certificate::from_der(cert).map_err(|e| e.to_string())?;
        let subject = cert.subject();
        let text = |attr: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>, what: &str| {
            attr.and_then(|a| a.as_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| format!("the certificate has no {what}"))
        };
        let common_name = text(subject.iter_common_name().next(), "common name")?;
        let school_id = text(subject.iter_organization().next(), "organization")?
            .parse::<SchoolId>()
            .map_err(|e| e.to_string())?;
        let units: Vec<&str> = subject
            .iter_organizational_unit()
            .map(|a| a.as_str().unwrap_or("(not text)"))
            .collect();
        let role = match units.as_slice() {
            [] => Role::Device(
                common_name
                    .parse()
                    .map_err(|e: shared::ids::IdError| e.to_string())?,
            ),
            [INTEGRATION_OU] => Role::Integration(
                common_name
                    .parse()
                    .map_err(|e: crate::integration::IntegrationIdError| e.to_string())?,
            ),
            other => return Err(format!("unknown organizational unit(s) {other:?}")),
        };
        Ok(Identity {
            role,
            school_id,
            serial: cert.tbs_certificate.raw_serial().to_vec(),
        })
    }
}
