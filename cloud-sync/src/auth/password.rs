//! Password hashes: Argon2id (version 0x13) with the `argon2` crate's default parameters,
//! m = 19 MiB, t = 2, p = 1 (OWASP's recommended minimum), a 16-byte salt from ring's
//! `SystemRandom`, stored as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`). A
//! verification reads the parameters from the stored string, so raising them later only
//! changes new hashes.
//!
//! Hashing takes tens of milliseconds of CPU on purpose. The server hashes through one
//! [`Hasher`]: on blocking threads, never on the async workers, a few at a time, each in one
//! of a few reused blocks of memory. (Memory argon2 allocated per hash stayed with the
//! allocator's per-thread arenas after it was freed: the cloud grew by about 19 MiB for
//! each blocking thread that had ever hashed.)

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use argon2::password_hash::{Output, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::Semaphore;

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

/// Hashes a new password with a fresh salt, allocating argon2's memory for this one hash (the
/// admin CLI and tests; the server uses [`Hasher::hash`]).
pub fn hash_password(password: &Password) -> Result<PasswordHash, AuthError> {
    hash_with(password.expose().as_bytes(), &mut Vec::new())
}

fn hash_with(password: &[u8], memory: &mut Vec<Block>) -> Result<PasswordHash, AuthError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| AuthError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    let argon2 = argon2();
    let output = output(&argon2, password, salt.as_salt(), memory)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    let phc = argon2::password_hash::PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&Params::default())
            .try_into()
            .map_err(|e: argon2::password_hash::Error| AuthError::Hash(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(PasswordHash(phc.to_string()))
}

/// Argon2's output for `password` and `salt` under `argon2`'s parameters, computed in
/// `memory` (grown to the parameters' size if smaller; its old contents do not matter: the
/// first pass overwrites every block before any is read).
fn output(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: Salt<'_>,
    memory: &mut Vec<Block>,
) -> argon2::password_hash::Result<Output> {
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    let params = argon2.params();
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    Output::init_with(len, |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..])?)
    })
}

/// True when `password` matches `stored`, computed in `memory`. A stored string that is not a
/// valid PHC Argon2 hash matches nothing.
fn verify_with(password: &[u8], stored: &PasswordHash, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = argon2::password_hash::PasswordHash::new(stored.as_str()) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let argon2 = Argon2::new(algorithm, version, params);
    // `Output`'s equality is constant-time.
    output(&argon2, password, salt, memory).is_ok_and(|computed| computed == expected)
}

/// The hash unknown users are checked against, so that their logins take as long as known
/// users' and the answer's timing does not tell which addresses have accounts.
fn dummy() -> &'static Option<PasswordHash> {
    static DUMMY: OnceLock<Option<PasswordHash>> = OnceLock::new();
    DUMMY.get_or_init(|| hash_with(b"no user has this password", &mut Vec::new()).ok())
}

/// How many password hashes the server runs at once, at most: each takes 19 MiB and tens of
/// milliseconds of a core, so a flood of logins waits here instead of exhausting either.
pub const HASHES_AT_ONCE: usize = 4;

/// The server's password hashing (logins, people added, second factors turned off): at most
/// [`HASHES_AT_ONCE`] at a time, on blocking threads, each in one of as many reused blocks of
/// memory.
#[derive(Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl Default for Hasher {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(HASHES_AT_ONCE)),
            memory: Arc::default(),
        }
    }
}

impl Hasher {
    /// Hashes a new password with a fresh salt.
    pub async fn hash(&self, password: Password) -> Result<PasswordHash, AuthError> {
        self.run(move |memory| hash_with(password.expose().as_bytes(), memory))
            .await?
    }

    /// True when `password` matches `stored`; with no stored hash (no such user), checks
    /// against a dummy so that it takes as long, and is false.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<PasswordHash>,
    ) -> Result<bool, AuthError> {
        self.run(move |memory| match (&stored, dummy()) {
            (Some(stored), _) => verify_with(password.as_bytes(), stored, memory),
            (None, dummy) => {
                if let Some(dummy) = dummy {
                    let _ = verify_with(password.as_bytes(), dummy, memory);
                }
                false
            }
        })
        .await
    }

    /// Runs `job` on a blocking thread with a permit and a block of memory. Both are held by
    /// the job itself, so a request that is dropped while waiting for it (a client that
    /// left) neither frees a permit early nor loses the memory.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| AuthError::Hash(e.to_string()))?;
        let pool = Arc::clone(&self.memory);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut memory = pool
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
                .unwrap_or_default();
            let out = job(&mut memory);
            pool.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(memory);
            out
        })
        .await
        .map_err(|e| AuthError::Hash(format!("hashing task: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    fn password(s: &str) -> Password {
        Password::try_from(s.to_owned()).unwrap()
    }

    #[test]
    fn hashes_are_salted_argon2id_and_verify_in_reused_memory() {
        let a = hash_password(&password("correct horse battery")).unwrap();
        let b = hash_password(&password("correct horse battery")).unwrap();
        assert_ne!(a, b, "salted");
        assert!(
            a.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            a.as_str()
        );
        // One block of memory, dirty from each previous use, gives the right answers.
        let mut memory = Vec::new();
        assert!(verify_with(b"correct horse battery", &a, &mut memory));
        assert!(verify_with(b"correct horse battery", &b, &mut memory));
        assert!(!verify_with(b"correct horse batterY", &a, &mut memory));
        let garbage = PasswordHash::from_stored("garbage".to_owned());
        assert!(!verify_with(b"x", &garbage, &mut memory));
        assert_eq!(memory.len(), Params::default().block_count());
    }

    #[test]
    fn agrees_with_the_argon2_crates_own_hashing() {
        // Ours, checked by the crate's verifier; the crate's, checked by ours (with other
        // parameters, which the stored string carries).
        let ours = hash_password(&password("correct horse battery")).unwrap();
        let parsed = argon2::password_hash::PasswordHash::new(ours.as_str()).unwrap();
        assert!(
            argon2()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        let params = Params::new(8 * 1024, 3, 1, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(
                b"hunter42 hunter42",
                &SaltString::encode_b64(&[7; 16]).unwrap(),
            )
            .unwrap()
            .to_string();
        let theirs = PasswordHash::from_stored(theirs);
        let mut memory = vec![Block::default(); 64 * 1024];
        assert!(verify_with(b"hunter42 hunter42", &theirs, &mut memory));
        assert!(!verify_with(b"hunter42 hunter43", &theirs, &mut memory));
    }

    #[tokio::test]
    async fn the_hasher_hashes_verifies_and_keeps_its_memory() {
        let hasher = Hasher::default();
        let hash = hasher
            .hash(password("correct horse battery"))
            .await
            .unwrap();
        let right = hasher.verify("correct horse battery".to_owned(), Some(hash.clone()));
        assert!(right.await.unwrap());
        let wrong = hasher.verify("correct horse batterY".to_owned(), Some(hash));
        assert!(!wrong.await.unwrap());
        let unknown = hasher.verify("correct horse battery".to_owned(), None);
        assert!(!unknown.await.unwrap());
        // One request at a time: one block of memory, kept for the next.
        assert_eq!(hasher.memory.lock().unwrap().len(), 1);
    }
}
