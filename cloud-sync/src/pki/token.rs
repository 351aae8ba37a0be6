//! One-time enrollment tokens: 160 random bits, shown once, stored only as their SHA-256.
//!
//! A fast hash is enough because the token is high-entropy: nobody can brute-force 2^160
//! candidates, so a slow password hash would only cost enrollment time.

use std::fmt;

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use super::PkiError;

/// Bytes of randomness in a token.
const TOKEN_BYTES: usize = 20;

/// Marks a string as a Hallwatch enrollment token, so a pasted one is recognisable.
const PREFIX: &str = "hwe_";

/// A freshly generated token. Its text is printed once and never stored.
pub struct EnrollmentToken(String);

/// The SHA-256 of a token's text, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl EnrollmentToken {
    /// A new random token.
    pub fn generate() -> Result<Self, PkiError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| PkiError::Random)?;
        Ok(Self(format!("{PREFIX}{}", hex::encode(bytes))))
    }

    /// The text to hand to the school's installer.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its hash, for storage.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

// The token is a secret: never in logs through `{:?}`.
impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnrollmentToken(..)")
    }
}

impl TokenHash {
    /// The hash of a presented token's text (any text: unknown tokens simply match nothing).
    pub fn of(token: &str) -> Self {
        let digest = digest::digest(&digest::SHA256, token.trim().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }
}

/// A new gateway id: `gw-` and 12 random hex digits (48 bits: ids are unique per school and
/// a collision with another school's gateway would be harmless, since a gateway is always
/// addressed with its school).
pub fn new_gateway_id() -> Result<shared::ids::GatewayId, PkiError> {
    let mut bytes = [0u8; 6];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Random)?;
    format!("gw-{}", hex::encode(bytes))
        .parse()
        .map_err(|_| PkiError::Random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hash_stably() {
        let a = EnrollmentToken::generate().unwrap();
        let b = EnrollmentToken::generate().unwrap();
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.as_str().starts_with("hwe_"));
        assert_eq!(a.as_str().len(), 4 + 2 * TOKEN_BYTES);
        assert_eq!(a.hash(), TokenHash::of(a.as_str()));
        assert_eq!(a.hash(), TokenHash::of(&format!(" {}\n", a.as_str())));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(format!("{a:?}"), "EnrollmentToken(..)");
    }
}
