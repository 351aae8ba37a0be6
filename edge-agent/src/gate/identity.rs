//! Who is on the other end of a TLS connection: the device id, school and serial taken from
//! its verified client certificate. The certificate is the only source of identity; nothing a
//! device sends later can change it.

use rustls::pki_types::CertificateDer;
use shared::ids::{DeviceId, SchoolId};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A verified device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeviceIdentity {
    pub(super) device_id: DeviceId,
    pub(super) school_id: SchoolId,
    /// The certificate's serial, big-endian bytes as in the certificate.
    pub(super) serial: Vec<u8>,
}

impl DeviceIdentity {
    /// Reads the identity from the leaf certificate the TLS handshake verified.
    pub(super) fn from_cert(cert: &CertificateDer<'_>) -> Result<DeviceIdentity, String> {
        let (_, cert) = X509Certificate::from_der(cert).map_err(|e| e.to_string())?;
        let subject = cert.subject();
        let text = |attr: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>, what: &str| {
            attr.and_then(|a| a.as_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| format!("the certificate has no {what}"))
        };
        let device_id = text(subject.iter_common_name().next(), "common name")?
            .parse::<DeviceId>()
            .map_err(|e| e.to_string())?;
        let school_id = text(subject.iter_organization().next(), "organization")?
            .parse::<SchoolId>()
            .map_err(|e| e.to_string())?;
        Ok(DeviceIdentity {
            device_id,
            school_id,
            serial: cert.tbs_certificate.raw_serial().to_vec(),
        })
    }
}
