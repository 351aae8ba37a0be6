//! The operator token: the local dashboard's shared secret, in `DATA_DIR/operator-token`
//! (mode 0600). `init` writes it; `run` writes one for a data directory made before it existed.

use std::path::Path;

use super::{InstallError, io};

pub use crate::layout::OPERATOR_TOKEN_FILE;
/// Random bytes in a token (written as hex).
const TOKEN_BYTES: usize = 32;

/// The operator token in `dir`, created if there is none yet.
pub fn ensure_operator_token(dir: &Path) -> Result<String, InstallError> {
    let path = dir.join(OPERATOR_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim().to_owned();
            if token.len() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) {
                return Err(InstallError::Token(format!(
                    "{} does not hold a usable token (at least 16 printable characters); \
                     delete it and restart to have a new one written",
                    path.display()
                )));
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; TOKEN_BYTES];
            rustls::crypto::ring::default_provider()
                .secure_random
                .fill(&mut bytes)
                .map_err(|_| InstallError::Token("no secure random source".into()))?;
            let token = hex::encode(bytes);
            crate::pki::write_key_file(&path, &format!("{token}\n"))?;
            tracing::info!(path = %path.display(), "wrote a new operator token");
            Ok(token)
        }
        Err(e) => Err(io(&path)(e)),
    }
}
