//! [`GatewayIdentity`]: who a verified client certificate belongs to.
//!
//! Gateway certificates carry the gateway id as the subject's CN and the school id as its O
//! (see `ca`). The TLS layer has already verified the chain against the gateway CA; this only
//! reads the names.

use shared::ids::{GatewayId, SchoolId};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::PkiError;

/// The gateway and school a connection authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayIdentity {
    /// The school the certificate was issued for.
    pub school_id: SchoolId,
    /// The gateway.
    pub gateway_id: GatewayId,
}

impl GatewayIdentity {
    /// Reads the identity from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let bad = |what: &str| PkiError::NotAGatewayCert(what.to_owned());
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| bad("unparsable"))?;
        let subject = cert.subject();
        let single = |mut values: Box<dyn Iterator<Item = &str> + '_>, what: &str| match (
            values.next(),
            values.next(),
        ) {
            (Some(v), None) => Ok(v.to_owned()),
            _ => Err(bad(what)),
        };
        let cn = single(
            Box::new(subject.iter_common_name().filter_map(|a| a.as_str().ok())),
            "needs exactly one CN",
        )?;
        let org = single(
            Box::new(subject.iter_organization().filter_map(|a| a.as_str().ok())),
            "needs exactly one O",
        )?;
        Ok(Self {
            school_id: org.parse().map_err(|_| bad("O is not a school id"))?,
            gateway_id: cn.parse().map_err(|_| bad("CN is not a gateway id"))?,
        })
    }
}
