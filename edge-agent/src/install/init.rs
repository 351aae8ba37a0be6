//! `edge-agent init`: a new data directory with `agent.toml`, the database, the CA and the
//! gateway's server certificate. All or nothing: on any failure the files it created are
//! removed again.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use shared::UnixMillis;
use shared::ids::SchoolId;

use super::{InstallError, OPERATOR_TOKEN_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE, io};
use crate::config::AlertSettings;
use crate::config::GateLimits;
use crate::config::{CONFIG_FILE, Config, HealthSettings};
use crate::config::{OccupancyPolicy, SnapshotPolicy};
use crate::pki::{self, Ca, Validity};
use crate::store::{CertRole, DB_FILE, Store};

/// What `init` is asked to set up. Hostnames and names are validated already.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The data directory; created if missing, must not be initialised.
    pub data_dir: PathBuf,
    /// The school.
    pub school_id: SchoolId,
    /// The school's name.
    pub school_name: String,
    /// DNS names for the server certificate.
    pub hostnames: Vec<String>,
    /// IP addresses for the server certificate.
    pub ips: Vec<IpAddr>,
    /// The device listener.
    pub mqtt_listen: SocketAddr,
    /// The dashboard listener.
    pub http_listen: SocketAddr,
}

/// What `init` created.
#[derive(Debug, Clone)]
pub struct Initialised {
    /// The configuration written to `agent.toml`.
    pub config: Config,
    /// Every file written.
    pub files: Vec<PathBuf>,
}

/// Files whose presence means a directory is initialised (or half-initialised by hand).
const MARKERS: &[&str] = &[
    CONFIG_FILE,
    DB_FILE,
    Ca::CERT_FILE,
    Ca::KEY_FILE,
    SERVER_CERT_FILE,
    SERVER_KEY_FILE,
];

/// Sets up `options.data_dir`. With no hostname and no IP given, the server certificate
/// names `localhost` and `127.0.0.1`.
pub fn init(options: InitOptions) -> Result<Initialised, InstallError> {
    let dir = options.data_dir.clone();
    if let Some(found) = MARKERS.iter().map(|m| dir.join(m)).find(|p| p.exists()) {
        return Err(InstallError::AlreadyInitialised { dir, found });
    }
    let (hostnames, ips) = if options.hostnames.is_empty() && options.ips.is_empty() {
        (
            vec!["localhost".to_owned()],
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )
    } else {
        (options.hostnames, options.ips)
    };
    let config = Config {
        school_id: options.school_id,
        school_name: options.school_name,
        hostnames,
        ips,
        mqtt_listen: options.mqtt_listen,
        http_listen: options.http_listen,
        gate: GateLimits::default(),
        alerts: AlertSettings::default(),
        health: HealthSettings::default(),
        snapshots: SnapshotPolicy::default(),
        occupancy: OccupancyPolicy::default(),
        rooms: Vec::new(),
        cloud: None,
        sync: crate::config::SyncSettings::default(),
    };
    let created_dir = !dir.exists();
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let files: Vec<PathBuf> = MARKERS
        .iter()
        .chain([&OPERATOR_TOKEN_FILE])
        .map(|m| dir.join(m))
        .collect();
    match write_all(&dir, &config) {
        Ok(()) => Ok(Initialised { config, files }),
        Err(err) => {
            // Undo: remove only what this run could have created. Nothing was there before
            // (checked above), so none of these files belonged to anyone else.
            for path in &files {
                let _ = std::fs::remove_file(path);
            }
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(dir.join(format!("{DB_FILE}{suffix}")));
            }
            if created_dir {
                let _ = std::fs::remove_dir(&dir);
            }
            Err(err)
        }
    }
}

fn write_all(dir: &Path, config: &Config) -> Result<(), InstallError> {
    let now = UnixMillis::now();
    let mut store = Store::create(&dir.join(DB_FILE), &config.school_id, now)?;

    let ca_validity = Validity::starting(now, pki::CA_VALIDITY);
    let ca_serial = store.allocate_gateway_serial(
        CertRole::Ca,
        ca_validity.not_before,
        ca_validity.not_after,
    )?;
    let ca = Ca::create(&config.school_id, ca_serial, ca_validity)?;
    ca.write(dir)?;

    let validity = Validity::starting(now, pki::SERVER_VALIDITY);
    let serial =
        store.allocate_gateway_serial(CertRole::Server, validity.not_before, validity.not_after)?;
    let server = pki::server_cert(
        &ca,
        &config.school_id,
        &config.hostnames,
        &config.ips,
        serial,
        validity,
    )?;
    pki::write_key_file(&dir.join(SERVER_KEY_FILE), &server.key_pem)?;
    let cert_path = dir.join(SERVER_CERT_FILE);
    crate::files::write_new(&cert_path, server.cert_pem.as_bytes()).map_err(io(&cert_path))?;

    super::ensure_operator_token(dir)?;

    // Last: agent.toml is what marks the directory as ready to run.
    let config_path = dir.join(CONFIG_FILE);
    crate::files::write_new(&config_path, config.to_toml().as_bytes()).map_err(io(&config_path))
}
