//! [`KeyRing`]: the Ed25519 keys that sign and verify access tokens.
//!
//! Keys live in `DATA_DIR/jwt-keys/` (mode 0700), one PKCS#8 DER file per key named
//! `<kid>.pk8` (mode 0600, created with `create_new`, never overwritten). The key id is the
//! file name, and it goes into every token's header. The key with the greatest id (ids made
//! here are `YYYYMMDDTHHMMSSZ-<hex>`, so the newest) signs; every key present verifies.
//! Rotation: add a key (`cloud-sync admin add-signing-key`, or any Ed25519 PKCS#8 DER file
//! named so that it sorts last); it signs from the next reload on (every
//! [`KeyRing::RELOAD_EVERY`], or at once when a token names a key not loaded yet); tokens
//! signed by the old key verify until they expire; remove the old file 16 minutes later (the
//! 15-minute lifetime, the reload and the 30 s of clock leeway).
//!
//! Verification never reads the algorithm from the token: only EdDSA is accepted, the key
//! is chosen by `kid` among ours, and `iss`, `aud`, `exp` and `sub` are required and checked.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ACCESS_TTL, AUDIENCE, AuthError, ISSUER};

/// The directory under the data directory that holds the signing keys.
pub const KEY_DIR: &str = "jwt-keys";

const KEY_SUFFIX: &str = "pk8";

/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECS: u64 = 30;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
}

/// Why an access token was refused. All of them answer the same 401; the reason is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Not a JWT, or its header is not one we could have written (e.g. `alg: none`).
    Malformed,
    /// The header names an algorithm other than EdDSA.
    WrongAlgorithm,
    /// No `kid`, or one that names none of our keys.
    UnknownKey,
    /// The signature, a claim or the claims' shape is wrong; jsonwebtoken's reason.
    Invalid(String),
    /// `exp` has passed.
    Expired,
}

/// The signing keys, reloaded from their directory.
pub struct KeyRing {
    dir: PathBuf,
    keys: RwLock<Arc<Keys>>,
    last_reload: Mutex<Instant>,
    validation: Validation,
}

struct Keys {
    signing_kid: String,
    signing: EncodingKey,
    verifying: BTreeMap<String, DecodingKey>,
}

impl KeyRing {
    /// How often the service reads the key directory again.
    pub const RELOAD_EVERY: Duration = Duration::from_secs(30);

    /// The shortest time between two reloads caused by tokens naming an unknown key (so that
    /// forged `kid`s cannot make the service read its directory on every request).
    const RELOAD_ON_MISS_EVERY: Duration = Duration::from_secs(5);

    /// Loads the keys in `data_dir/jwt-keys`, creating the directory and a first key when
    /// there is none.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, AuthError> {
        let dir = data_dir.join(KEY_DIR);
        if !has_keys(&dir)? {
            add_signing_key(data_dir)?;
        }
        let keys = read_keys(&dir)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Ok(Self {
            dir,
            keys: RwLock::new(Arc::new(keys)),
            // The first unknown kid may reload at once (a key another replica just added).
            last_reload: Mutex::new(
                Instant::now()
                    .checked_sub(Self::RELOAD_ON_MISS_EVERY)
                    .unwrap_or_else(Instant::now),
            ),
            validation,
        })
    }

    /// Reads the key directory again: new keys verify (and the greatest signs), removed
    /// ones no longer verify. On an error (e.g. no key left) the loaded keys stay.
    pub fn reload(&self) -> Result<(), AuthError> {
        let keys = read_keys(&self.dir)?;
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        *self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        Ok(())
    }

    /// The id of the key that signs.
    pub fn signing_kid(&self) -> String {
        self.current().signing_kid.clone()
    }

    /// A signed access token for `user`, issued `now`, and its lifetime.
    pub fn issue(&self, user: Uuid, now: SystemTime) -> Result<(String, Duration), AuthError> {
        let keys = self.current();
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = AccessClaims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user.to_string(),
            iat,
            exp: iat + ACCESS_TTL.as_secs(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.signing_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &keys.signing)?;
        Ok((token, ACCESS_TTL))
    }

    /// The user an access token was issued to, if it is one of ours and still valid.
    pub fn verify(&self, token: &str) -> Result<Uuid, TokenRefusal> {
        self.verify_until(token).map(|(user, _)| user)
    }

    /// [`KeyRing::verify`], also answering when the token expires (seconds since the epoch):
    /// a live stream ends then.
    pub fn verify_until(&self, token: &str) -> Result<(Uuid, u64), TokenRefusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRefusal::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenRefusal::WrongAlgorithm);
        }
        let kid = header.kid.ok_or(TokenRefusal::UnknownKey)?;
        let key = match self.verifying_key(&kid) {
            Some(key) => key,
            None => {
                self.reload_on_miss();
                self.verifying_key(&kid).ok_or(TokenRefusal::UnknownKey)?
            }
        };
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenRefusal::Expired,
                _ => TokenRefusal::Invalid(e.to_string()),
            },
        )?;
        let user =
            Uuid::parse_str(&data.claims.sub).map_err(|e| TokenRefusal::Invalid(e.to_string()))?;
        Ok((user, data.claims.exp))
    }

    fn current(&self) -> Arc<Keys> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn verifying_key(&self, kid: &str) -> Option<DecodingKey> {
        self.current().verifying.get(kid).cloned()
    }

    fn reload_on_miss(&self) {
        let due = self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
            >= Self::RELOAD_ON_MISS_EVERY;
        if due && let Err(err) = self.reload() {
            tracing::error!(error = %err, "cannot reload the signing keys");
        }
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.current();
        f.debug_struct("KeyRing")
            .field("dir", &self.dir)
            .field("signing_kid", &keys.signing_kid)
            .field("kids", &keys.verifying.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Creates a new signing key in `data_dir/jwt-keys` (and the directory, mode 0700) and
/// returns its id. It sorts after every key made before it, so it signs from the next load.
pub fn add_signing_key(data_dir: &Path) -> Result<String, AuthError> {
    let dir = data_dir.join(KEY_DIR);
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io_error(&dir))?;
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| AuthError::Random)?;
    let newest = key_files(&dir)?.into_iter().map(|(kid, _)| kid).max();
    // Within one second the random suffix decides the order: draw until it sorts last; when
    // the newest key of this same second drew a suffix too high to beat, wait for the next
    // second (a key made seconds before was otherwise refused about once in 65 rotations). A
    // newest key from the future (a clock set back) is an error, not a silent non-rotation.
    let mut kid = None;
    'seconds: for second in 0..3 {
        if second > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1_000));
        }
        for _ in 0..64 {
            let mut suffix = [0u8; 3];
            rng.fill(&mut suffix).map_err(|_| AuthError::Random)?;
            let candidate = format!("{}-{}", utc_stamp(SystemTime::now()), hex::encode(suffix));
            if newest.as_ref().is_none_or(|newest| candidate > *newest) {
                kid = Some(candidate);
                break 'seconds;
            }
        }
    }
    let kid = kid.ok_or_else(|| AuthError::KeyOrder {
        newest: newest.unwrap_or_default(),
    })?;
    let path = dir.join(format!("{kid}.{KEY_SUFFIX}"));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_error(&path))?;
    file.write_all(pkcs8.as_ref())
        .and_then(|()| file.sync_all())
        .map_err(io_error(&path))?;
    Ok(kid)
}

fn has_keys(dir: &Path) -> Result<bool, AuthError> {
    if !dir.exists() {
        return Ok(false);
    }
    Ok(!key_files(dir)?.is_empty())
}

/// `(kid, path)` of every `*.pk8` file whose name is a usable key id.
fn key_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, AuthError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(KEY_SUFFIX) {
            continue;
        }
        let Some(kid) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let usable = !kid.is_empty()
            && kid.len() <= 64
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if usable {
            out.push((kid.to_owned(), path.clone()));
        } else {
            tracing::warn!(path = %path.display(), "key file name is not a key id; ignored");
        }
    }
    Ok(out)
}

fn read_keys(dir: &Path) -> Result<Keys, AuthError> {
    let mut verifying = BTreeMap::new();
    let mut signing = None;
    for (kid, path) in key_files(dir)? {
        let pkcs8 = fs::read(&path).map_err(io_error(&path))?;
        // Accepts PKCS#8 v1 too (what `openssl genpkey -algorithm ed25519` writes).
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(|_| AuthError::BadKey {
                path: path.display().to_string(),
            })?;
        verifying.insert(
            kid.clone(),
            DecodingKey::from_ed_der(pair.public_key().as_ref()),
        );
        if signing.as_ref().is_none_or(|(current, _)| kid > *current) {
            signing = Some((kid, EncodingKey::from_ed_der(&pkcs8)));
        }
    }
    let (signing_kid, signing) = signing.ok_or_else(|| AuthError::NoKey {
        path: dir.display().to_string(),
    })?;
    Ok(Keys {
        signing_kid,
        signing,
        verifying,
    })
}

/// `YYYYMMDDTHHMMSSZ`, which sorts in time order.
fn utc_stamp(now: SystemTime) -> String {
    shared::UnixMillis::from(now)
        .utc(shared::UtcFormat::Compact)
        .to_string()
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> AuthError {
    let path = path.display().to_string();
    move |source| AuthError::Io { path, source }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn first_key_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load_or_create(dir.path()).unwrap();
        let kid = ring.signing_kid();
        let file = dir.path().join(KEY_DIR).join(format!("{kid}.pk8"));
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(dir.path().join(KEY_DIR))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let again = KeyRing::load_or_create(dir.path()).unwrap();
        assert_eq!(again.signing_kid(), kid);

        let user = Uuid::now_v7();
        let (token, ttl) = ring.issue(user, SystemTime::now()).unwrap();
        assert_eq!(ttl, ACCESS_TTL);
        assert_eq!(again.verify(&token), Ok(user));
    }

    #[test]
    fn a_new_key_signs_and_old_tokens_verify_until_the_old_key_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load_or_create(dir.path()).unwrap();
        let old_kid = ring.signing_kid();
        let user = Uuid::now_v7();
        let (old_token, _) = ring.issue(user, SystemTime::now()).unwrap();

        let new_kid = add_signing_key(dir.path()).unwrap();
        assert!(new_kid > old_kid);
        ring.reload().unwrap();
        assert_eq!(ring.signing_kid(), new_kid);
        let (new_token, _) = ring.issue(user, SystemTime::now()).unwrap();
        assert_eq!(ring.verify(&old_token), Ok(user));
        assert_eq!(ring.verify(&new_token), Ok(user));

        fs::remove_file(dir.path().join(KEY_DIR).join(format!("{old_kid}.pk8"))).unwrap();
        ring.reload().unwrap();
        assert_eq!(ring.verify(&old_token), Err(TokenRefusal::UnknownKey));
        assert_eq!(ring.verify(&new_token), Ok(user));
    }

    #[test]
    fn an_empty_directory_keeps_the_loaded_keys() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load_or_create(dir.path()).unwrap();
        let kid = ring.signing_kid();
        fs::remove_file(dir.path().join(KEY_DIR).join(format!("{kid}.pk8"))).unwrap();
        assert!(matches!(ring.reload(), Err(AuthError::NoKey { .. })));
        assert_eq!(ring.signing_kid(), kid);
    }
}
