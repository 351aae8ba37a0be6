//! Refresh tokens: `hwr_` and 256 random bits in hex, shown to the client once and stored
//! only as their SHA-256 ([`TokenHash`], as enrollment tokens are: a secret nobody can guess
//! needs no slow hash).

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

use super::AuthError;
use crate::pki::TokenHash;

const TOKEN_BYTES: usize = 32;

/// Marks a string as a Hallwatch refresh token.
const PREFIX: &str = "hwr_";

/// A freshly generated refresh token.
pub struct RefreshToken(String);

impl RefreshToken {
    /// A new random token.
    pub fn generate() -> Result<Self, AuthError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| AuthError::Random)?;
        Ok(Self(format!("{PREFIX}{}", hex::encode(bytes))))
    }

    /// The text to give the client.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its hash, for storage.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

// A secret: never in logs through `{:?}`.
impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_carry_256_random_bits() {
        let a = RefreshToken::generate().unwrap();
        let b = RefreshToken::generate().unwrap();
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 4 + 64);
        assert_eq!(a.hash(), TokenHash::of(a.as_str()));
        assert_eq!(format!("{a:?}"), "RefreshToken(..)");
    }
}
