//! The installer's commands: `init` sets up a gateway's data directory, `device add`,
//! `device list` and `device revoke` manage its devices, `integration add|list|revoke` its
//! integrations (strobes, PA, signage); `device add --csv` adds many devices from one file.
//! They compose [`crate::config`], [`crate::pki`] and [`crate::store`]; the binary only
//! parses arguments and prints.

mod bundle;
mod csv_devices;
mod device;
mod init;
mod integration;
mod token;

use std::path::{Path, PathBuf};

use shared::ids::DeviceId;

pub use bundle::{BUNDLE_FILES, BundleJson, GatewayAddr, NVS_NAMESPACE, Pems, Topics, nvs_csv};
pub use csv_devices::{
    CsvDevice, CsvOutcome, MAX_CSV_BYTES, MAX_CSV_ROWS, Registered, add_devices, check_bundle_dirs,
    read_devices_csv,
};
pub use device::{
    AddedDevice, RevokedDevice, add_device, list_devices, render_table, revoke_device,
};
pub use init::{InitOptions, Initialised, init};
pub use integration::{
    AddedIntegration, INTEGRATION_BUNDLE_FILES, RevokedIntegration, add_integration,
    list_integrations, render_integrations, revoke_integration,
};
pub use token::{OPERATOR_TOKEN_FILE, ensure_operator_token};

pub use crate::layout::{CRL_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE};

/// Why an installer command failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is already initialised ({} exists); refusing to overwrite it",
        dir.display(),
        found.display()
    )]
    AlreadyInitialised { dir: PathBuf, found: PathBuf },
    #[error("{}: {reason}", dir.display())]
    BundleDir { dir: PathBuf, reason: String },
    #[error("device {0} has no topic namespace: {1}")]
    Topic(DeviceId, String),
    #[error("the configuration names no hostname or IP for devices to connect to")]
    NoDeviceHost,
    #[error("cannot write the bundle: {0}")]
    Bundle(String),
    #[error("operator token: {0}")]
    Token(String),
    #[error("{}, line {line}: {reason}; nothing was written", path.display())]
    Csv {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

impl InstallError {
    /// The process exit status for this error: 64 (EX_USAGE) for a bad configuration, 65
    /// (EX_DATAERR) for a bad devices file, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            InstallError::Config(_) | InstallError::NoDeviceHost => 64,
            InstallError::Csv { .. } => 65,
            _ => 1,
        }
    }
}

/// Refuses `out` if it holds any of a bundle's `files` already: a bundle is never written
/// over another.
fn ensure_no_bundle(out: &Path, files: &[&str]) -> Result<(), InstallError> {
    match files.iter().map(|f| out.join(f)).find(|p| p.exists()) {
        Some(existing) => Err(InstallError::BundleDir {
            dir: out.to_owned(),
            reason: format!(
                "already holds {}; choose an empty directory",
                existing.display()
            ),
        }),
        None => Ok(()),
    }
}

fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.into();
    move |source| InstallError::Io { path, source }
}
