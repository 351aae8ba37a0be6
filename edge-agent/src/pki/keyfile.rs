//! Writing private keys: created with mode 0600 from the first byte, never widened later.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::PkiError;

/// Writes `pem` to a new file at `path` readable only by its owner. Refuses to replace an
/// existing file, so a key is never silently overwritten.
pub fn write_key_file(path: &Path, pem: &str) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(pem.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}
