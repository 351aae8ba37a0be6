//! `edge-agent setup`: the installer's path in one run — `init`, `enroll` and the first
//! devices — composed from [`crate::install`] and [`crate::enroll`].
//!
//! Order, so that a failure leaves a directory a rerun can finish:
//!
//! 1. the devices file is read and checked (nothing touched yet);
//! 2. the data directory is looked at: initialised already (for this school) means `init`
//!    is skipped, enrolled already means the token is neither checked nor used;
//! 3. otherwise the cloud is asked whether the token is valid for the school
//!    (`POST /api/v1/enroll/check`, which does not use it up) — unreachable or refused,
//!    nothing is written;
//! 4. `init`, then `enroll` (an enrollment that fails here leaves an initialised, unenrolled
//!    directory: the same `setup` again, with a new token if the cloud refused this one,
//!    picks up from step 3), then the devices (rows already registered the same way, with
//!    their bundle in place, are kept, so a rerun after a failure half-way finishes the rest).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use shared::UnixMillis;
use shared::ids::SchoolId;

use crate::config::{CONFIG_FILE, CloudUrl, Config, ConfigError, SyncUrl};
use crate::enroll::{self, EnrollError, EnrollOptions, EnrollToken, Enrolled};
use crate::install::{
    self, CsvDevice, CsvOutcome, InitOptions, Initialised, InstallError, Registered,
};

/// Everything `setup` needs, prompted for or given as flags.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// The gateway's data directory.
    pub data_dir: PathBuf,
    /// The school.
    pub school_id: SchoolId,
    /// The school's name (for `init`).
    pub school_name: String,
    /// DNS names devices use to reach the gateway.
    pub hostnames: Vec<String>,
    /// IP addresses devices use to reach the gateway.
    pub ips: Vec<IpAddr>,
    /// The device listener.
    pub mqtt_listen: SocketAddr,
    /// The dashboard listener.
    pub http_listen: SocketAddr,
    /// The cloud's public listener.
    pub cloud: CloudUrl,
    /// The cloud's sync listener.
    pub sync_url: SyncUrl,
    /// The school's one-time enrollment token.
    pub token: EnrollToken,
    /// A CSV file of devices (`id,kind,room`), if any.
    pub devices: Option<PathBuf>,
    /// Where device bundles go, one directory per device.
    pub bundles: PathBuf,
}

/// What one `setup` run did.
#[derive(Debug, Clone)]
pub struct SetupDone {
    /// `init`'s result, or `None` when the directory was initialised before.
    pub initialised: Option<Initialised>,
    /// `enroll`'s result, or `None` when the gateway was enrolled before.
    pub enrolled: Option<Enrolled>,
    /// The configuration now in `agent.toml`.
    pub config: Config,
    /// The devices file's rows.
    pub rows: Vec<CsvDevice>,
    /// One entry per row.
    pub devices: Vec<CsvOutcome>,
}

/// Why `setup` stopped. Each says what state it left and how to go on.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "{} is initialised for school {found}, not {wanted}; choose another --data-dir",
        dir.display()
    )]
    OtherSchool {
        dir: PathBuf,
        found: SchoolId,
        wanted: SchoolId,
    },
    #[error("agent.toml is there but refused ({0}); fix it or choose another --data-dir")]
    Config(ConfigError),
    #[error("{0}")]
    Devices(InstallError),
    #[error("before writing anything: {0}; nothing was written")]
    Check(EnrollError),
    #[error("{0}")]
    Init(InstallError),
    #[error(
        "the gateway is initialised but not enrolled: {source}. Run the same `edge-agent setup` \
         again (with a new token if the cloud refused this one): it keeps what is there and \
         goes on from the enrollment"
    )]
    Enroll {
        #[source]
        source: EnrollError,
    },
}

impl SetupError {
    /// The process exit status: that of the step that failed ([`EnrollError::exit_code`],
    /// [`InstallError::exit_code`]), 64 for a bad `agent.toml`, 73 for a directory of another
    /// school.
    pub fn exit_code(&self) -> u8 {
        match self {
            SetupError::OtherSchool { .. } => 73,
            SetupError::Config(_) => 64,
            SetupError::Devices(e) | SetupError::Init(e) => e.exit_code(),
            SetupError::Check(e) | SetupError::Enroll { source: e } => e.exit_code(),
        }
    }
}

/// A step `setup` reports as it goes, for the installer to watch.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The devices file is read: this many rows.
    DevicesRead(usize),
    /// The directory was initialised before; `init` is skipped.
    AlreadyInitialised,
    /// The gateway was enrolled before; the token is not needed.
    AlreadyEnrolled,
    /// The cloud says the token is valid for the school until then.
    TokenValid(UnixMillis),
}

/// Runs the installer's path (see the module's documentation).
pub async fn setup(
    options: SetupOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<SetupDone, SetupError> {
    let dir = options.data_dir.clone();
    let rows: Vec<CsvDevice> = match &options.devices {
        Some(path) => {
            let rows = install::read_devices_csv(path).map_err(SetupError::Devices)?;
            progress(Progress::DevicesRead(rows.len()));
            rows
        }
        None => Vec::new(),
    };

    let existing = if dir.join(CONFIG_FILE).exists() {
        let config = Config::load(&dir).map_err(SetupError::Config)?;
        if config.school_id != options.school_id {
            return Err(SetupError::OtherSchool {
                dir,
                found: config.school_id,
                wanted: options.school_id,
            });
        }
        progress(Progress::AlreadyInitialised);
        Some(config)
    } else {
        None
    };
    if let (None, Some(path)) = (&existing, &options.devices) {
        install::check_bundle_dirs(path, &rows, &options.bundles).map_err(SetupError::Devices)?;
    }
    let enrolled_before = existing.as_ref().is_some_and(|c| c.cloud.is_some());
    if enrolled_before {
        progress(Progress::AlreadyEnrolled);
    } else {
        let expires = enroll::check_token(&options.cloud, &options.token, &options.school_id)
            .await
            .map_err(SetupError::Check)?;
        progress(Progress::TokenValid(expires));
    }

    let initialised = match existing {
        Some(_) => None,
        None => Some(
            install::init(InitOptions {
                data_dir: dir.clone(),
                school_id: options.school_id.clone(),
                school_name: options.school_name.clone(),
                hostnames: options.hostnames.clone(),
                ips: options.ips.clone(),
                mqtt_listen: options.mqtt_listen,
                http_listen: options.http_listen,
            })
            .map_err(SetupError::Init)?,
        ),
    };
    let enrolled = if enrolled_before {
        None
    } else {
        Some(
            enroll::enroll(EnrollOptions {
                data_dir: dir.clone(),
                cloud: options.cloud.clone(),
                sync_url: options.sync_url.clone(),
                token: options.token.clone(),
                force: false,
            })
            .await
            .map_err(|source| SetupError::Enroll { source })?,
        )
    };
    let devices = match &options.devices {
        Some(path) if !rows.is_empty() => {
            install::add_devices(&dir, path, &rows, &options.bundles, Registered::SkipSame)
                .map_err(SetupError::Devices)?
        }
        _ => Vec::new(),
    };
    let config = Config::load(&dir).map_err(SetupError::Config)?;
    Ok(SetupDone {
        initialised,
        enrolled,
        config,
        rows,
        devices,
    })
}
