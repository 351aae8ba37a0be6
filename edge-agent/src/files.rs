//! Small file-writing helpers shared by the installer commands, enrollment and the PKI: files
//! that must not exist yet, and files replaced atomically, alone or several together.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `bytes` to a new file at `path` (mode 0644, subject to the umask); fails if the
/// file exists.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Replaces `path` with `bytes` so that a reader sees either the old or the new content,
/// never a partial file: write a sibling temporary file, sync it, rename it over `path`.
pub(crate) fn replace_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    stage(path, bytes, 0o666)?.commit()?;
    sync_parent(path)
}

/// A complete, synced copy of a file's new content next to it (`NAME.tmp`), not yet in
/// place. [`Staged::commit`] renames it over the file; dropping it uncommitted removes it.
/// Staging several files first and committing them together keeps the window in which only
/// some are replaced to a few renames.
#[derive(Debug)]
pub(crate) struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    committed: bool,
}

/// Writes `bytes` to `path`'s temporary sibling, created afresh with `mode` (before the
/// umask) so a key's copy is never readable by others, not even for a moment.
pub(crate) fn stage(path: &Path, bytes: &[u8], mode: u32) -> io::Result<Staged> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    // A leftover from an interrupted run may have other permissions; never reuse it.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let staged = Staged {
        tmp,
        path: path.to_owned(),
        committed: false,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&staged.tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(staged)
}

impl Staged {
    /// Renames the new content over the file. Sync the directory afterwards
    /// ([`sync_parent`]) for the rename to survive a power cut.
    pub(crate) fn commit(mut self) -> io::Result<()> {
        std::fs::rename(&self.tmp, &self.path)?;
        self.committed = true;
        Ok(())
    }

    /// Where the content goes.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Syncs the directory holding `path`, which makes renames and new entries in it durable.
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
