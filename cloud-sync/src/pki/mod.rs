//! The cloud's gateway certificate authority and enrollment tokens. No network, no SQL.
//!
//! - `ca`: [`GatewayCa`], created in the data directory on first start; signs gateway client
//!   certificates from their CSRs and the sync listener's server certificate.
//! - `identity`: [`GatewayIdentity`], read from a verified client certificate.
//! - `token`: one-time enrollment tokens and their hashes.

mod ca;
mod identity;
mod token;

use thiserror::Error;

pub use ca::{GatewayCa, IssuedGateway, ServerCert};
pub use identity::GatewayIdentity;
pub use token::{EnrollmentToken, TokenHash, new_gateway_id};

/// Why a certificate operation failed.
#[derive(Debug, Error)]
pub enum PkiError {
    /// Reading or writing the CA files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// rcgen refused to build, parse or sign.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The CSR is not a valid, correctly self-signed PEM request.
    #[error("the CSR is not a valid PEM certificate signing request: {0}")]
    BadCsr(rcgen::Error),
    /// The system random generator failed.
    #[error("no randomness available")]
    Random,
    /// A certificate lacks the subject fields a gateway certificate has.
    #[error("certificate is not a gateway certificate: {0}")]
    NotAGatewayCert(String),
}
