//! `edge-agent restore`: a backup unpacked into a staging directory beside the target
//! (`.DIR.restoring`), checked whole — manifest first, known flat names only (so no entry can
//! name a path outside), regular files only, each size bounded and equal to the manifest's,
//! each SHA-256 matching, every required file present, `agent.toml` valid and of the
//! manifest's school, the database passing its integrity check — and only then renamed into
//! place. A target that holds files is refused unless `force`, which moves it aside.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use shared::ids::SchoolId;
use shared::{UnixMillis, UtcFormat};

use super::{
    BackupError, FILES, FORMAT, MANIFEST, MAX_DB_BYTES, MAX_FILE_BYTES, MAX_MANIFEST_BYTES,
    Manifest, VERSION, hidden_sibling,
};
use crate::config::Config;
use crate::store::{DB_FILE, Store};

/// What `restore` did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The gateway's school.
    pub school_id: SchoolId,
    /// When the backup was taken (UTC, to the second).
    pub taken_at: String,
    /// Where the directory's previous files went (`force`).
    pub moved_aside: Option<PathBuf>,
}

/// Restores the backup `from` into `data_dir` (see the module's documentation).
pub fn restore(from: &Path, data_dir: &Path, force: bool) -> Result<Restored, BackupError> {
    let holds_files = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(BackupError::Io {
                path: data_dir.to_owned(),
                source,
            });
        }
    };
    if holds_files && !force {
        return Err(BackupError::NotEmpty(data_dir.to_owned()));
    }
    let staging = Staging::new(data_dir)?;
    let manifest = unpack(from, &staging.0)?;
    let damaged = |reason: String| BackupError::Damaged {
        path: from.to_owned(),
        reason,
    };
    let config =
        Config::load(&staging.0).map_err(|e| damaged(format!("its agent.toml is refused: {e}")))?;
    if config.school_id != manifest.school_id {
        return Err(damaged(format!(
            "its agent.toml is for school {}, its manifest for {}",
            config.school_id, manifest.school_id
        )));
    }
    // Opening checks integrity (and brings an older backup's schema up to date).
    let store =
        Store::open(&staging.0.join(DB_FILE)).map_err(|e| damaged(format!("its database: {e}")))?;
    let db_school = store
        .school_id()
        .map_err(|e| damaged(format!("its database: {e}")))?;
    drop(store);
    if db_school != manifest.school_id {
        return Err(damaged(format!(
            "its database is for school {db_school}, its manifest for {}",
            manifest.school_id
        )));
    }

    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source: io::Error| BackupError::Io { path, source }
    };
    let moved_aside = if holds_files {
        let aside = aside_name(data_dir);
        std::fs::rename(data_dir, &aside).map_err(io_err(data_dir))?;
        Some(aside)
    } else {
        // Empty or missing: an empty directory makes way for the restored one.
        match std::fs::remove_dir(data_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(data_dir)(e)),
            _ => {}
        }
        None
    };
    staging.commit(data_dir)?;
    crate::files::sync_parent(data_dir).map_err(io_err(data_dir))?;
    Ok(Restored {
        school_id: manifest.school_id,
        taken_at: manifest.taken_at.utc(UtcFormat::DateTime).to_string(),
        moved_aside,
    })
}

/// Reads the archive into `dir`, checking each entry; the manifest.
fn unpack(from: &Path, dir: &Path) -> Result<Manifest, BackupError> {
    let damaged = |reason: String| BackupError::Damaged {
        path: from.to_owned(),
        reason,
    };
    let file = std::fs::File::open(from).map_err(|source| BackupError::Io {
        path: from.to_owned(),
        source,
    })?;
    let decoder =
        zstd::Decoder::new(file).map_err(|e| damaged(format!("not a zstd stream: {e}")))?;
    let mut archive = tar::Archive::new(decoder);
    let mut entries = archive
        .entries()
        .map_err(|e| damaged(format!("not a tar archive: {e}")))?;
    let cut = |e: io::Error| damaged(format!("it is truncated or corrupt ({e})"));

    let mut first = entries
        .next()
        .ok_or_else(|| damaged("it is empty".into()))?
        .map_err(cut)?;
    if entry_name(&first).map_err(damaged)? != MANIFEST || first.size() > MAX_MANIFEST_BYTES {
        return Err(damaged(format!(
            "it does not start with {MANIFEST}; is it a file from `edge-agent backup`?"
        )));
    }
    let mut text = Vec::new();
    (&mut first)
        .take(MAX_MANIFEST_BYTES)
        .read_to_end(&mut text)
        .map_err(cut)?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| damaged(format!("its manifest cannot be read: {e}")))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(damaged(format!(
            "it is {} version {}; this edge-agent reads {FORMAT} version {VERSION}",
            manifest.format, manifest.version
        )));
    }
    for listed in &manifest.files {
        if !FILES.iter().any(|(name, _, _)| *name == listed.name) {
            return Err(damaged(format!(
                "its manifest lists {:?}, which no backup holds",
                listed.name
            )));
        }
    }
    for (name, required, _) in FILES {
        if *required && !manifest.files.iter().any(|f| f.name == *name) {
            return Err(damaged(format!("it does not hold {name}")));
        }
    }

    let mut done: Vec<&str> = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(cut)?;
        let name = entry_name(&entry).map_err(damaged)?;
        let Some(listed) = manifest.files.iter().find(|f| f.name == name) else {
            return Err(damaged(format!(
                "it holds an entry {name:?} its manifest does not list"
            )));
        };
        if done.contains(&listed.name.as_str()) {
            return Err(damaged(format!("it holds {name} twice")));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(damaged(format!("its entry {name} is not a regular file")));
        }
        let limit = if name == DB_FILE {
            MAX_DB_BYTES
        } else {
            MAX_FILE_BYTES
        };
        if entry.size() != listed.size || listed.size > limit {
            return Err(damaged(format!(
                "its entry {name} is {} bytes, the manifest says {} (at most {limit})",
                entry.size(),
                listed.size
            )));
        }
        let secret = FILES.iter().any(|(n, _, secret)| *n == name && *secret);
        let path = dir.join(&listed.name);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if secret { 0o600 } else { 0o644 })
            .open(&path)
            .map_err(|source| BackupError::Io {
                path: path.clone(),
                source,
            })?;
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(cut)?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > listed.size {
                return Err(damaged(format!("its entry {name} is longer than stated")));
            }
            context.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|source| BackupError::Io {
                path: path.clone(),
                source,
            })?;
        }
        if written != listed.size {
            return Err(damaged(format!(
                "its entry {name} is cut short ({written} of {} bytes)",
                listed.size
            )));
        }
        if hex::encode(context.finish()) != listed.sha256 {
            return Err(damaged(format!(
                "{name} does not match its checksum in the manifest"
            )));
        }
        out.sync_all().map_err(|source| BackupError::Io {
            path: path.clone(),
            source,
        })?;
        done.push(listed.name.as_str());
    }
    if let Some(missing) = manifest
        .files
        .iter()
        .find(|f| !done.contains(&f.name.as_str()))
    {
        return Err(damaged(format!(
            "it ends before {} (truncated?)",
            missing.name
        )));
    }
    Ok(manifest.clone())
}

/// An entry's name, which must be one plain file name: no directory, no `..`, no absolute
/// path, nothing outside the staging directory.
fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, String> {
    let raw = entry.path_bytes();
    let name = std::str::from_utf8(&raw).unwrap_or_default();
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0');
    if plain {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "it holds an entry named {:?}, which is not a plain file name (path traversal?)",
            String::from_utf8_lossy(&raw)
        ))
    }
}

/// `DIR.replaced-<unix seconds>`, beside `DIR`.
fn aside_name(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".replaced-{}", UnixMillis::now().get() / 1000));
    dir.with_file_name(name)
}

/// The staging directory, removed with everything in it unless committed.
struct Staging(PathBuf, bool);

impl Staging {
    fn new(data_dir: &Path) -> Result<Staging, BackupError> {
        let path = hidden_sibling(data_dir, "restoring");
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| BackupError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        // A leftover of an interrupted restore: ours by its name.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o750)
            .create(&path)
            .map_err(|source| BackupError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Staging(path, false))
    }

    fn commit(mut self, to: &Path) -> Result<(), BackupError> {
        std::fs::rename(&self.0, to).map_err(|source| BackupError::Io {
            path: to.to_owned(),
            source,
        })?;
        self.1 = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
