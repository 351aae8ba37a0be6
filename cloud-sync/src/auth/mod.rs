//! People's accounts, without SQL or network: who a user is allowed to be, how passwords are
//! hashed, the signing keys and claims of access tokens, and refresh tokens.
//!
//! - `account`: [`Email`], [`Role`] and [`Grant`] (a role with its region or school),
//!   validated once where they enter.
//! - `password`: Argon2id hashing and verification ([`Hasher`]: bounded, off the async
//!   workers, in reused memory), with a dummy hash that unknown users are checked against so
//!   that they take as long as known ones.
//! - `keys`: the Ed25519 keys that sign access tokens ([`KeyRing`]), kept in the data
//!   directory under key ids so that keys can rotate; issuing and verifying access tokens.
//! - `refresh`: refresh tokens, random and shown once, stored as SHA-256.
//! - `totp`: the optional second factor, RFC 6238 ([`TotpSecret`], [`TotpCode`]): checked
//!   between the password and the issuing of tokens.
//! - `seal`: [`TotpKey`], which seals TOTP secrets at rest with a key in the data directory.

mod account;
mod keys;
mod password;
mod refresh;
mod seal;
mod totp;

use std::time::Duration;

use thiserror::Error;

pub use account::{Email, Grant, GrantError, Password, Role};
pub use keys::{AccessClaims, KEY_DIR, KeyRing, TokenRefusal, add_signing_key};
pub use password::{HASHES_AT_ONCE, Hasher, PasswordHash, hash_password};
pub use refresh::RefreshToken;
pub use seal::{TOTP_KEY_FILE, TotpKey, Unseal};
pub use totp::{
    BadCode, DIGITS as TOTP_DIGITS, STEP_SECS as TOTP_STEP_SECS, TotpCode, TotpSecret, step_at,
};

/// How long an access token is valid.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

/// How long a refresh token is valid after it is issued. Each refresh issues a new one, so a
/// session used at least this often lives on; an idle one ends.
pub const REFRESH_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// The `iss` of every access token and the only one accepted.
pub const ISSUER: &str = "hallwatch-cloud";

/// The `aud` of every access token and the only one accepted: the people-facing API.
pub const AUDIENCE: &str = "hallwatch-api";

/// Why an account operation failed (not a refusal of the user: those are values).
#[derive(Debug, Error)]
pub enum AuthError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A key file holds no Ed25519 PKCS#8 key.
    #[error("{path}: not an Ed25519 PKCS#8 key")]
    BadKey {
        /// The file.
        path: String,
    },
    /// The TOTP sealing key file is not 32 bytes.
    #[error(
        "{path}: not a TOTP sealing key (32 bytes); restore it from a backup, or move it away to make a new one (every TOTP enrolment is then lost)"
    )]
    BadTotpKey {
        /// The file.
        path: String,
    },
    /// The key directory holds no key to sign with.
    #[error("{path}: no signing key (*.pk8)")]
    NoKey {
        /// The directory.
        path: String,
    },
    /// The newest key's id sorts after any id made now (the clock was set back).
    #[error("the newest signing key, {newest}, sorts after a key made now; is the clock right?")]
    KeyOrder {
        /// The newest key id present.
        newest: String,
    },
    /// The system random generator failed.
    #[error("no randomness available")]
    Random,
    /// Hashing a password failed (Argon2 parameters or memory).
    #[error("password hashing: {0}")]
    Hash(String),
    /// Encoding an access token failed.
    #[error("access token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}
