//! `edge-agent backup` and `edge-agent restore`: a gateway in one file.
//!
//! The file is a zstd-compressed tar of flat entries: `manifest.json` first (format, version,
//! school, time, and each file's size and SHA-256), then `edge.db` — a consistent copy taken
//! with `VACUUM INTO` on a read-only connection, so the agent keeps running and writing —
//! and the data directory's configuration, keys, certificates and CRL. It is written to a
//! temporary file created with mode 0600 (it holds private keys) and linked into place only
//! when complete, never over an existing file.
//!
//! Restoring (`restore.rs`) checks the whole archive in a staging directory beside the
//! target before anything is replaced. Restoring an old backup does not confuse the sync:
//! the agent draws a new epoch at every start (see ARCHITECTURE.md, "Delivery guarantees").

mod restore;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shared::UnixMillis;
use shared::ids::SchoolId;

use crate::config::{CONFIG_FILE, Config, ConfigError};
use crate::enroll::{CLOUD_CA_FILE, GATEWAY_CERT_FILE, GATEWAY_KEY_FILE};
use crate::install::{CRL_FILE, OPERATOR_TOKEN_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE};
use crate::pki::Ca;
use crate::store::{DB_FILE, Reader, StoreError};

pub use restore::{Restored, restore};

/// The manifest's entry name; always the archive's first entry.
pub const MANIFEST: &str = "manifest.json";
/// What the manifest's `format` says.
pub const FORMAT: &str = "hallwatch-edge-backup";
/// The manifest's version this agent writes and reads.
pub const VERSION: u32 = 1;
/// The largest database a backup holds.
pub const MAX_DB_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// The largest other file (configuration, PEM, token).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The largest manifest.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// Every file a backup may hold: (name, required, secret). Secrets are restored with mode
/// 0600, the rest 0644.
pub const FILES: &[(&str, bool, bool)] = &[
    (DB_FILE, true, false),
    (CONFIG_FILE, true, false),
    (Ca::CERT_FILE, true, false),
    (Ca::KEY_FILE, true, true),
    (SERVER_CERT_FILE, true, false),
    (SERVER_KEY_FILE, true, true),
    (OPERATOR_TOKEN_FILE, false, true),
    (CRL_FILE, false, false),
    (GATEWAY_KEY_FILE, false, true),
    (GATEWAY_CERT_FILE, false, false),
    (CLOUD_CA_FILE, false, false),
];

/// The archive's table of contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// The gateway's school.
    pub school_id: SchoolId,
    /// When the backup was taken.
    pub taken_at: UnixMillis,
    /// The files that follow, in order.
    pub files: Vec<ManifestFile>,
}

/// One file in the archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Its name in the data directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// What `backup` wrote.
#[derive(Debug, Clone)]
pub struct BackedUp {
    /// The archive's size.
    pub bytes: u64,
    /// Each file and its size.
    pub files: Vec<(String, u64)>,
}

/// Why a backup or restore was refused or failed. Nothing was replaced in any case.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "{} is not an initialised gateway data directory (no agent.toml)",
        .0.display()
    )]
    NotInitialised(PathBuf),
    #[error(transparent)]
    Config(ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{} exists; choose a new file name (a backup never overwrites a file)", .0.display())]
    OutExists(PathBuf),
    #[error(
        "{} is not empty; restore into an empty or new directory, or give --force to move \
         its files aside (stop the agent first)",
        .0.display()
    )]
    NotEmpty(PathBuf),
    #[error("{}: the backup cannot be used: {reason}; nothing was replaced", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl BackupError {
    /// The process exit status: 64 a bad `agent.toml`, 65 an unusable archive, 66 no data
    /// directory, 73 a file or directory in the way, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            BackupError::Config(_) => 64,
            BackupError::Damaged { .. } => 65,
            BackupError::NotInitialised(_) => 66,
            BackupError::OutExists(_) | BackupError::NotEmpty(_) => 73,
            BackupError::Store(_) | BackupError::Io { .. } => 1,
        }
    }
}

/// Backs `data_dir` up into `out` (see the module's documentation).
pub fn backup(data_dir: &Path, out: &Path) -> Result<BackedUp, BackupError> {
    let config = match Config::load(data_dir) {
        Ok(config) => config,
        Err(ConfigError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Err(BackupError::NotInitialised(data_dir.to_owned()));
        }
        Err(err) => return Err(BackupError::Config(err)),
    };
    if out.exists() {
        return Err(BackupError::OutExists(out.to_owned()));
    }
    let partial = Partial::new(out)?;
    // The database's copy, beside the archive (same file system, as large as the database).
    let db_copy = partial.sibling("db");
    Reader::open(&data_dir.join(DB_FILE))?.copy_into(db_copy.path())?;

    let mut files = Vec::new();
    for &(name, required, _) in FILES {
        let path = if name == DB_FILE {
            db_copy.path().to_owned()
        } else {
            data_dir.join(name)
        };
        match std::fs::metadata(&path) {
            Ok(meta) => files.push((name, path, meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !required => {}
            Err(source) => return Err(BackupError::Io { path, source }),
        }
    }
    let mut manifest = Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        school_id: config.school_id,
        taken_at: UnixMillis::now(),
        files: Vec::new(),
    };
    for (name, path, size) in &files {
        manifest.files.push(ManifestFile {
            name: (*name).to_owned(),
            size: *size,
            sha256: sha256_file(path)?,
        });
    }
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io {
        path: out.to_owned(),
        source: io::Error::other(e),
    })?;

    let io_out = |source| BackupError::Io {
        path: out.to_owned(),
        source,
    };
    let file = partial.file.try_clone().map_err(io_out)?;
    let encoder = zstd::Encoder::new(file, 3).map_err(io_out)?;
    let mut tar = tar::Builder::new(encoder);
    append(
        &mut tar,
        MANIFEST,
        &manifest_json[..],
        manifest_json.len() as u64,
    )
    .map_err(io_out)?;
    for (name, path, size) in &files {
        let source = File::open(path).map_err(|source| BackupError::Io {
            path: path.clone(),
            source,
        })?;
        // Exactly the size the manifest states: a file that grew meanwhile (agent.toml edited)
        // is cut there, and its hash then tells the restore.
        append(&mut tar, name, source.take(*size), *size).map_err(io_out)?;
    }
    let encoder = tar.into_inner().map_err(io_out)?;
    let file = encoder.finish().map_err(io_out)?;
    file.sync_all().map_err(io_out)?;
    let bytes = partial.commit()?;
    drop(db_copy);
    Ok(BackedUp {
        bytes,
        files: files
            .into_iter()
            .map(|(name, _, size)| (name.to_owned(), size))
            .collect(),
    })
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: impl Read,
    size: u64,
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(0);
    tar.append_data(&mut header, name, data)
}

/// The SHA-256 of a file, hex.
fn sha256_file(path: &Path) -> Result<String, BackupError> {
    let io_err = |source| BackupError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        context.update(&buf[..n]);
    }
    Ok(hex::encode(context.finish()))
}

/// The archive being written: `.NAME.partial` beside `out`, mode 0600 from its creation,
/// removed unless [`Partial::commit`] linked it into place.
struct Partial {
    tmp: PathBuf,
    out: PathBuf,
    file: File,
    committed: bool,
}

impl Partial {
    fn new(out: &Path) -> Result<Partial, BackupError> {
        let tmp = hidden_sibling(out, "partial");
        let _ = std::fs::remove_file(&tmp);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|source| BackupError::Io {
                path: tmp.clone(),
                source,
            })?;
        Ok(Partial {
            tmp,
            out: out.to_owned(),
            file,
            committed: false,
        })
    }

    /// A scratch file beside the archive, removed when dropped.
    fn sibling(&self, what: &str) -> Scratch {
        let path = hidden_sibling(&self.out, what);
        let _ = std::fs::remove_file(&path);
        Scratch(path)
    }

    /// Links the archive into place (failing if `out` appeared meanwhile) and returns its
    /// size.
    fn commit(mut self) -> Result<u64, BackupError> {
        let io_err = |source| BackupError::Io {
            path: self.out.clone(),
            source,
        };
        match std::fs::hard_link(&self.tmp, &self.out) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(BackupError::OutExists(self.out.clone()));
            }
            Err(e) => return Err(io_err(e)),
        }
        self.committed = true;
        let _ = std::fs::remove_file(&self.tmp);
        crate::files::sync_parent(&self.out).map_err(io_err)?;
        Ok(std::fs::metadata(&self.out).map_err(io_err)?.len())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A temporary file removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `DIR/.NAME.what` for `DIR/NAME`.
fn hidden_sibling(path: &Path, what: &str) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".");
    name.push(what);
    path.with_file_name(name)
}
