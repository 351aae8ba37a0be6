//! [`TotpKey`]: the key that seals TOTP secrets at rest (AES-256-GCM, ring).
//!
//! A TOTP secret must be readable by the service (it computes codes from it), so it cannot be
//! hashed like a password. Stored in clear, any copy of the database — a backup, a replica, a
//! dump handed to support — would hold every user's second factor. Sealed under a key kept
//! beside the JWT signing keys, in the data directory (`DATA_DIR/totp-key`, 32 random bytes,
//! mode 0600, created on first start, never overwritten), the database alone is not enough.
//! The user id is the associated data, so a sealed secret copied onto another user's row
//! does not open. Replicas share the key as they share `jwt-keys/`. Losing the key loses
//! every enrolment: login with TOTP then fails until `cloud-sync admin reset-totp`.
//!
//! A sealed secret is `1 || nonce (12) || ciphertext || tag (16)`; the leading version byte
//! leaves room for another key or cipher later.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

use super::AuthError;
use super::totp::TotpSecret;

/// The key file under the data directory.
pub const TOTP_KEY_FILE: &str = "totp-key";

const VERSION: u8 = 1;
const KEY_LEN: usize = 32;

/// The key TOTP secrets are sealed with.
pub struct TotpKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

/// A sealed secret that does not open: another key, another user's row, or damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a stored TOTP secret does not open with this data directory's totp-key")]
pub struct Unseal;

impl TotpKey {
    /// Loads `data_dir/totp-key`, creating it (32 random bytes, mode 0600) when absent.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, AuthError> {
        let path = data_dir.join(TOTP_KEY_FILE);
        let io = |source| AuthError::Io {
            path: path.display().to_string(),
            source,
        };
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => create(&path).map_err(io)?,
            Err(e) => return Err(io(e)),
        };
        Self::from_bytes(&bytes).ok_or_else(|| AuthError::BadTotpKey {
            path: path.display().to_string(),
        })
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    /// `secret` sealed for `user`.
    pub fn seal(&self, user: Uuid, secret: &TotpSecret) -> Result<Vec<u8>, AuthError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| AuthError::Random)?;
        let mut body = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(user.as_bytes()),
                &mut body,
            )
            .map_err(|_| AuthError::Random)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + body.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// The secret `sealed` holds for `user`.
    pub fn open(&self, user: Uuid, sealed: &[u8]) -> Result<TotpSecret, Unseal> {
        let (&version, rest) = sealed.split_first().ok_or(Unseal)?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(Unseal);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unseal)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(user.as_bytes()), &mut body)
            .map_err(|_| Unseal)?;
        TotpSecret::from_bytes(plain).ok_or(Unseal)
    }
}

impl fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpKey(..)")
    }
}

/// Writes a new key with `create_new` (two replicas starting at once: one wins, the other
/// reads the winner's file).
fn create(path: &PathBuf) -> std::io::Result<Vec<u8>> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| std::io::Error::other("no randomness available"))?;
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(&key)?;
            file.sync_all()?;
            Ok(key.to_vec())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => fs::read(path),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_user_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = TotpKey::load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(TOTP_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = TotpKey::load_or_create(dir.path()).unwrap();

        let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let secret = TotpSecret::generate().unwrap();
        let sealed = key.seal(ann, &secret).unwrap();
        assert_eq!(sealed.len(), 1 + 12 + TotpSecret::LEN + 16);
        assert!(
            !sealed
                .windows(TotpSecret::LEN)
                .any(|w| w == secret.as_bytes())
        );
        assert_ne!(sealed, key.seal(ann, &secret).unwrap(), "fresh nonce");
        assert_eq!(again.open(ann, &sealed), Ok(secret));
        assert_eq!(key.open(bob, &sealed), Err(Unseal));

        let other = TotpKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert_eq!(other.open(ann, &sealed), Err(Unseal));
        let mut damaged = sealed.clone();
        damaged[20] ^= 1;
        assert_eq!(key.open(ann, &damaged), Err(Unseal));
        assert_eq!(key.open(ann, &[]), Err(Unseal));
        assert_eq!(key.open(ann, &[1, 2, 3]), Err(Unseal));

        fs::write(dir.path().join(TOTP_KEY_FILE), b"short").unwrap();
        assert!(matches!(
            TotpKey::load_or_create(dir.path()),
            Err(AuthError::BadTotpKey { .. })
        ));
    }
}
