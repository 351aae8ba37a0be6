//! `edge-agent enroll`: the gateway gets its identity towards the cloud.
//!
//! It makes a P-256 key and a CSR in memory (`pki`), posts the CSR with the school's one-time
//! token to the cloud's `POST /api/v1/enroll` (`http`), checks the answer — the certificate
//! certifies this key, chains to the CA sent with it, and names this gateway's school — and
//! only then writes, each file atomically and `agent.toml` last (`write`):
//!
//! - `gateway.key` (0600): the gateway's private key for the sync listener's mutual TLS;
//! - `gateway.pem`: its client certificate (CN = gateway id, O = school id);
//! - `cloud-ca.pem`: the cloud's gateway CA, which signed `gateway.pem` and the sync
//!   listener's server certificate: the sync client trusts it and nothing else;
//! - the `[cloud]` section of `agent.toml`: the cloud URL, the sync URL and the gateway id.
//!
//! A refusal writes nothing. Each kind has its own exit status ([`EnrollError::exit_code`]).
//! With `sync` (#6), the only module that talks to the cloud.

mod http;
mod write;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use shared::UnixMillis;
use shared::ids::{GatewayId, SchoolId};

use crate::cloud_http::StatusCode;
use crate::config::{CloudSettings, CloudUrl, Config, ConfigError, SyncUrl};
use crate::pki::{GatewayKey, PkiError};

pub use crate::layout::{CLOUD_CA_FILE, GATEWAY_CERT_FILE, GATEWAY_KEY_FILE};

/// What `enroll` is asked to do.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// An initialised data directory.
    pub data_dir: PathBuf,
    /// The cloud's public listener.
    pub cloud: CloudUrl,
    /// The cloud's sync listener, stored for the sync loop.
    pub sync_url: SyncUrl,
    /// The school's one-time token.
    pub token: EnrollToken,
    /// Enroll again although the gateway is enrolled: a new key, certificate, CA and
    /// `[cloud]` section replace the old ones.
    pub force: bool,
}

/// What a successful enrollment wrote.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The school (the gateway's, and the token's).
    pub school_id: SchoolId,
    /// The `[cloud]` section now in `agent.toml`.
    pub cloud: CloudSettings,
    /// When the certificate expires.
    pub not_after: UnixMillis,
    /// The gateway id this enrollment replaced (`--force`).
    pub replaced: Option<GatewayId>,
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
}

/// An enrollment token as the installer typed it: printable ASCII, kept out of `Debug`.
#[derive(Clone)]
pub struct EnrollToken(String);

impl EnrollToken {
    /// The longest token accepted; the cloud's are 44 characters.
    pub const MAX_LEN: usize = 256;
}

impl FromStr for EnrollToken {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let token = text.trim();
        if token.is_empty() {
            return Err("the token is empty".into());
        }
        if token.len() > Self::MAX_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "a token is at most {} printable ASCII characters, as \
                 `cloud-sync admin create-school` prints it",
                Self::MAX_LEN
            ));
        }
        Ok(EnrollToken(token.to_owned()))
    }
}

impl fmt::Debug for EnrollToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnrollToken(<redacted>)")
    }
}

/// Why enrollment was refused or failed. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(
        "{} is not an initialised gateway data directory (no agent.toml); run `edge-agent init` first",
        .0.display()
    )]
    NotInitialised(PathBuf),
    #[error(transparent)]
    Config(ConfigError),
    #[error(
        "{} is already enrolled{}; --force enrolls it again with a new key, replacing \
         gateway.key, gateway.pem, cloud-ca.pem and the [cloud] section of agent.toml (the old \
         certificate is then no longer used by this gateway)",
        dir.display(),
        describe_enrollment(.gateway_id.as_ref(), .found.as_ref())
    )]
    AlreadyEnrolled {
        dir: PathBuf,
        gateway_id: Option<GatewayId>,
        found: Option<PathBuf>,
    },
    #[error("cannot reach the cloud at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the cloud refused the token ({status}): {message}")]
    TokenRefused { status: StatusCode, message: String },
    #[error("the cloud at {url} refused the enrollment ({status}): {message}")]
    CloudRefused {
        url: String,
        status: StatusCode,
        message: String,
    },
    #[error("the cloud's answer cannot be used ({reason}); nothing was written")]
    BadAnswer { reason: String },
    #[error(
        "the token belongs to school {theirs}, but this gateway was initialised for school \
         {ours}; nothing was written, and the token is now used up: ask the cloud's operator \
         for a token for {ours} (`cloud-sync admin create-token --school {ours}`)"
    )]
    WrongSchool { ours: SchoolId, theirs: SchoolId },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl EnrollError {
    /// The process exit status (sysexits.h where one fits): 64 a bad `agent.toml`, 66 no
    /// data directory, 69 the cloud unreachable, 73 already enrolled, 76 the cloud refused
    /// otherwise or answered something unusable, 77 the token refused (unknown, used or
    /// expired), 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            EnrollError::Config(_) => 64,
            EnrollError::NotInitialised(_) => 66,
            EnrollError::Unreachable { .. } => 69,
            EnrollError::AlreadyEnrolled { .. } => 73,
            EnrollError::CloudRefused { .. }
            | EnrollError::BadAnswer { .. }
            | EnrollError::WrongSchool { .. } => 76,
            EnrollError::TokenRefused { .. } => 77,
            EnrollError::Pki(_) | EnrollError::Io { .. } => 1,
        }
    }
}

fn describe_enrollment(gateway_id: Option<&GatewayId>, found: Option<&PathBuf>) -> String {
    match (gateway_id, found) {
        (Some(id), _) => format!(" as gateway {id} ([cloud] in agent.toml)"),
        (None, Some(path)) => format!(
            " ({} is there, perhaps from an interrupted enrollment)",
            path.display()
        ),
        (None, None) => String::new(),
    }
}

/// Enrolls the gateway in `options.data_dir` with the cloud. Needs a rustls crypto provider
/// installed for the process (the binary installs ring first thing).
pub async fn enroll(options: EnrollOptions) -> Result<Enrolled, EnrollError> {
    let dir = &options.data_dir;
    let config = match Config::load(dir) {
        Ok(config) => config,
        Err(ConfigError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(EnrollError::NotInitialised(dir.clone()));
        }
        Err(err) => return Err(EnrollError::Config(err)),
    };
    let replaced = config.cloud.as_ref().map(|c| c.gateway_id.clone());
    if !options.force {
        let found = [GATEWAY_KEY_FILE, GATEWAY_CERT_FILE, CLOUD_CA_FILE]
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.exists());
        if replaced.is_some() || found.is_some() {
            return Err(EnrollError::AlreadyEnrolled {
                dir: dir.clone(),
                gateway_id: replaced,
                found,
            });
        }
    }

    let key = GatewayKey::generate()?;
    let csr_pem = key.csr_pem(&config.school_id)?;
    let answer = http::post_enrollment(&options.cloud, &options.token, csr_pem).await?;

    // Check everything before writing anything.
    if answer.school_id != config.school_id {
        return Err(EnrollError::WrongSchool {
            ours: config.school_id,
            theirs: answer.school_id,
        });
    }
    let bad = |reason: String| EnrollError::BadAnswer { reason };
    let cert = key
        .check_certificate(&answer.certificate_pem, &answer.ca_pem)
        .map_err(|e| bad(e.to_string()))?;
    if cert.common_name != answer.gateway_id.as_str()
        || cert.organization != answer.school_id.as_str()
    {
        return Err(bad(format!(
            "the certificate is for {}/{}, the answer names {}/{}",
            cert.organization, cert.common_name, answer.school_id, answer.gateway_id
        )));
    }
    let cloud = CloudSettings {
        url: options.cloud,
        sync_url: options.sync_url,
        gateway_id: answer.gateway_id,
    };
    let files = write::write_enrollment(
        dir,
        &write::Enrollment {
            key_pem: key.key_pem(),
            cert_pem: answer.certificate_pem,
            ca_pem: answer.ca_pem,
            cloud: cloud.clone(),
        },
    )?;
    Ok(Enrolled {
        school_id: config.school_id,
        cloud,
        not_after: cert.not_after,
        replaced,
        files,
    })
}

/// Asks the cloud whether `token` would enroll a gateway of `school`, without using it up
/// (`POST /api/v1/enroll/check`): `edge-agent setup` does this before it writes anything.
/// Returns when the token expires. Errors are [`enroll`]'s: unreachable, the token refused
/// (also when it belongs to another school), or another refusal.
pub async fn check_token(
    cloud: &CloudUrl,
    token: &EnrollToken,
    school: &SchoolId,
) -> Result<UnixMillis, EnrollError> {
    let answer = http::post_check(cloud, token, school).await?;
    if &answer.school_id != school {
        return Err(EnrollError::BadAnswer {
            reason: format!(
                "the cloud answered for school {}, not {school}",
                answer.school_id
            ),
        });
    }
    Ok(answer.expires_at)
}

fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EnrollError {
    let path = path.into();
    move |source| EnrollError::Io { path, source }
}
