//! Enrollment: the JSON a gateway posts to the cloud's public listener with its one-time token
//! and a certificate signing request for its own key, and the cloud's answer.
//!
//! Refusals are the cloud's usual error body, `{"error": {"code": ..., "message": ...}}`:
//! an unknown token is 401 (`unknown_token`), an expired one 410 (`token_expired`), a used one
//! 409 (`token_used`), an unusable CSR 400 (`bad_csr`, the token stays valid).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{GatewayId, SchoolId};

/// Where the request goes, below the cloud's base URL.
pub const ENROLL_PATH: &str = "/api/v1/enroll";
/// Where a token is checked without being used, below the cloud's base URL.
pub const ENROLL_CHECK_PATH: &str = "/api/v1/enroll/check";

/// What the gateway sends.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The one-time token the cloud printed for the school (`cloud-sync admin create-school`).
    pub token: String,
    /// A PKCS#10 request for the gateway's own P-256 key, PEM. Only its public key is used.
    pub csr_pem: String,
}

impl fmt::Debug for EnrollRequest {
    // The token is a secret until it is used.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("token", &"<redacted>")
            .field("csr_pem", &self.csr_pem)
            .finish()
    }
}

/// What the cloud answers on success: who the gateway now is, and its certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The school the token belonged to.
    pub school_id: SchoolId,
    /// The id the cloud assigned the gateway: the certificate's CN.
    pub gateway_id: GatewayId,
    /// The gateway's client certificate for the sync listener (CN = gateway id,
    /// O = school id, client authentication only), PEM.
    pub certificate_pem: String,
    /// The cloud's gateway CA, PEM: it signed `certificate_pem` and the sync listener's
    /// server certificate, so the gateway trusts it for sync.
    pub ca_pem: String,
}

/// What an installer's tool sends to learn, before it writes anything, whether a token would
/// enroll a gateway of `school_id`. The token is not used up.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollCheckRequest {
    /// The token, as for [`EnrollRequest`].
    pub token: String,
    /// The school the gateway is set up for.
    pub school_id: SchoolId,
}

impl fmt::Debug for EnrollCheckRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollCheckRequest")
            .field("token", &"<redacted>")
            .field("school_id", &self.school_id)
            .finish()
    }
}

/// The cloud's answer to a token that would enroll a gateway of the school asked about.
/// Refusals are as for enrollment, plus 403 `wrong_school` for a valid token of another
/// school (its message names that school).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollCheckResponse {
    /// The token's school (the one asked about).
    pub school_id: SchoolId,
    /// When the token stops being valid, Unix milliseconds.
    pub expires_at: crate::UnixMillis,
}

#[cfg(test)]
mod tests {
    use super::*;

    // The field names are the wire format: pin them.
    #[test]
    fn the_json_field_names_are_fixed() {
        let request = EnrollRequest {
            token: "hwe_x".into(),
            csr_pem: "CSR".into(),
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"token":"hwe_x","csr_pem":"CSR"}"#
        );
        let text = r#"{"school_id":"lincoln-high","gateway_id":"gw-1","certificate_pem":"C","ca_pem":"A"}"#;
        let response: EnrollResponse = serde_json::from_str(text).unwrap();
        assert_eq!(response.gateway_id.as_str(), "gw-1");
        assert_eq!(serde_json::to_string(&response).unwrap(), text);
    }

    #[test]
    fn the_check_json_is_fixed_and_keeps_the_token_out_of_debug() {
        let request = EnrollCheckRequest {
            token: "hwe_secret".into(),
            school_id: "lincoln-high".parse().unwrap(),
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"token":"hwe_secret","school_id":"lincoln-high"}"#
        );
        assert!(!format!("{request:?}").contains("secret"));
        let text = r#"{"school_id":"lincoln-high","expires_at":1795253434052}"#;
        let answer: EnrollCheckResponse = serde_json::from_str(text).unwrap();
        assert_eq!(answer.expires_at.get(), 1_795_253_434_052);
        assert_eq!(serde_json::to_string(&answer).unwrap(), text);
    }

    #[test]
    fn ids_are_validated_and_the_token_stays_out_of_debug() {
        let bad = r#"{"school_id":"a/b","gateway_id":"gw-1","certificate_pem":"C","ca_pem":"A"}"#;
        assert!(serde_json::from_str::<EnrollResponse>(bad).is_err());
        let request = EnrollRequest {
            token: "hwe_secret".into(),
            csr_pem: String::new(),
        };
        assert!(!format!("{request:?}").contains("secret"));
    }
}
