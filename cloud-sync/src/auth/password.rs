//! Password hashes: Argon2id (version 0x13) with the `argon2` crate's default parameters,
//! m = 19 MiB, t = 2, p = 1 (OWASP's recommended minimum), a 16-byte salt from ring's
//! `SystemRandom`, stored as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`). A
//! verification reads the parameters from the stored string, so raising them later only
//! changes new hashes.
//!
//! Hashing takes tens of milliseconds of CPU on purpose: callers run it on a blocking
//! thread, never on the async workers.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};

use super::{AuthError, Password};

/// A PHC-format Argon2id hash, as stored in `users.password_hash`.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// A stored hash, as read from the database.
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Hashes a new password with a fresh salt.
pub fn hash_password(password: &Password) -> Result<PasswordHash, AuthError> {
    hash_bytes(password.expose().as_bytes())
}

fn hash_bytes(password: &[u8]) -> Result<PasswordHash, AuthError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| AuthError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    let hash = argon2()
        .hash_password(password, &salt)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(PasswordHash(hash.to_string()))
}

/// True when `password` matches `stored`. A stored string that is not a valid PHC hash
/// matches nothing.
pub fn verify_password(password: &str, stored: &PasswordHash) -> bool {
    match argon2::password_hash::PasswordHash::new(stored.as_str()) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time a verification takes, for a login whose user does not exist, so that the
/// answer's timing does not tell which addresses have accounts. Always false.
pub fn verify_against_dummy(password: &str) -> bool {
    static DUMMY: OnceLock<Option<PasswordHash>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_bytes(b"no user has this password").ok());
    if let Some(dummy) = dummy {
        let _ = verify_password(password, dummy);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_argon2id_and_verify() {
        let password = Password::try_from("correct horse battery".to_owned()).unwrap();
        let a = hash_password(&password).unwrap();
        let b = hash_password(&password).unwrap();
        assert_ne!(a, b, "salted");
        assert!(
            a.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            a.as_str()
        );
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse batterY", &a));
        assert!(!verify_password(
            "x",
            &PasswordHash::from_stored("garbage".to_owned())
        ));
        assert!(!verify_against_dummy("correct horse battery"));
    }
}
