//! `cloud-sync serve`'s settings from three places, validated into a [`Config`] before any
//! socket is bound: a flag wins over a `HALLWATCH_CLOUD_<FIELD>` variable, which wins over
//! the TOML file `--config` names (`/etc/hallwatch/cloud.toml` under the package), which
//! wins over the default. The database URL's variable is `DATABASE_URL`, as for the other
//! commands. Every refusal names where the value came from — the flag, the variable, or the
//! field and the file — and what is allowed. docs/configuration.md describes each field.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use shared::sync::Limits;

use crate::{Config, Liveness, LoginLimits};

/// The prefix of the variables that set a field.
pub const ENV_PREFIX: &str = "HALLWATCH_CLOUD_";
/// The database URL's variable (shared with `migrate` and `admin`).
pub const DATABASE_URL_VAR: &str = "DATABASE_URL";
/// The largest configuration file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// The longest value of a variable, in bytes.
pub const MAX_VAR_BYTES: usize = 4_096;
/// Most `sync_names`, and most `trusted_proxies`.
pub const MAX_NAMES: usize = 32;
/// The defaults of the listeners and the sync names.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_SYNC_LISTEN: &str = "0.0.0.0:8443";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
pub const DEFAULT_SYNC_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// The configuration file as written (and what flags and variables fill in).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub sync_listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub sync_names: Option<Vec<String>>,
    pub pool_size: Option<u64>,
    pub rate_per_sec: Option<f64>,
    pub rate_burst: Option<u64>,
    pub gateway_offline_after_s: Option<u64>,
    pub trusted_proxies: Option<Vec<String>>,
}

/// Every field with its flag (`None`: none) and how its variable's value is written.
pub const FIELDS: &[(&str, Option<&str>, Kind)] = &[
    ("database_url", Some("--database-url"), Kind::Text),
    ("data_dir", Some("--data-dir"), Kind::Text),
    ("listen", Some("--listen"), Kind::Text),
    ("sync_listen", Some("--sync-listen"), Kind::Text),
    ("metrics_listen", Some("--metrics-listen"), Kind::Text),
    ("sync_names", Some("--sync-name"), Kind::List),
    ("pool_size", Some("--pool-size"), Kind::Whole),
    ("rate_per_sec", Some("--rate-per-sec"), Kind::Number),
    ("rate_burst", Some("--rate-burst"), Kind::Whole),
    (
        "gateway_offline_after_s",
        Some("--gateway-offline-after"),
        Kind::Whole,
    ),
    ("trusted_proxies", Some("--trusted-proxy"), Kind::List),
];

/// How a variable's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Comma-separated, each item trimmed.
    List,
    /// Decimal digits.
    Whole,
    /// A decimal number.
    Number,
}

/// The variable that sets `field`.
pub fn var_name(field: &str) -> String {
    if field == "database_url" {
        DATABASE_URL_VAR.to_owned()
    } else {
        format!("{ENV_PREFIX}{}", field.to_ascii_uppercase())
    }
}

/// Why the settings were refused: where the value came from, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct SettingsError {
    pub origin: String,
    pub reason: String,
}

/// Where a field's value came from.
#[derive(Debug, Clone)]
enum Origin {
    Flag(&'static str),
    Env(String),
    File(PathBuf),
}

/// Reads `--config` (if given), the variables and the flags, and validates the result.
/// `vars` is the environment (the process's, or a test's).
pub fn resolve(
    config_file: Option<&Path>,
    flags: RawSettings,
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Config, SettingsError> {
    let mut raw = match config_file {
        Some(path) => read_file(path)?,
        None => RawSettings::default(),
    };
    let mut origins: HashMap<&'static str, Origin> = HashMap::new();
    if let Some(path) = config_file {
        for &(field, _, _) in FIELDS {
            if raw.is_set(field) {
                origins.insert(field, Origin::File(path.to_owned()));
            }
        }
    }
    for (field, var, value) in env_values(vars)? {
        raw.set_from_env(field, &var, &value)?;
        origins.insert(field, Origin::Env(var));
    }
    for &(field, flag, _) in FIELDS {
        if flags.is_set(field) {
            raw.take_field(field, &flags);
            origins.insert(field, Origin::Flag(flag.unwrap_or(field)));
        }
    }
    raw.validate(&origins)
}

/// The defaults, for the documentation test and for people.
pub fn defaults() -> RawSettings {
    RawSettings {
        database_url: None,
        data_dir: None,
        listen: Some(DEFAULT_LISTEN.to_owned()),
        sync_listen: Some(DEFAULT_SYNC_LISTEN.to_owned()),
        metrics_listen: Some(DEFAULT_METRICS_LISTEN.to_owned()),
        sync_names: Some(DEFAULT_SYNC_NAMES.map(str::to_owned).to_vec()),
        pool_size: Some(16),
        rate_per_sec: Some(20.0),
        rate_burst: Some(40),
        gateway_offline_after_s: Some(Liveness::DEFAULT_OFFLINE_AFTER.as_secs()),
        trusted_proxies: Some(Vec::new()),
    }
}

fn read_file(path: &Path) -> Result<RawSettings, SettingsError> {
    let refuse = |reason: String| SettingsError {
        origin: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path)
        .map_err(|e| refuse(format!("cannot read the configuration file: {e}")))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| refuse(format!("cannot read the configuration file: {e}")))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(refuse(format!(
            "is larger than {MAX_FILE_BYTES} bytes; is it the right file?"
        )));
    }
    toml::from_str(&text).map_err(|e| refuse(e.to_string()))
}

/// The variables that set a field, checked: `HALLWATCH_CLOUD_*` must name a field, values are
/// bounded and UTF-8.
fn env_values(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Vec<(&'static str, String, String)>, SettingsError> {
    let mut found = Vec::new();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        if name != DATABASE_URL_VAR && !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let refuse = |reason: String| SettingsError {
            origin: name.to_owned(),
            reason,
        };
        let Some(&(field, _, _)) = FIELDS.iter().find(|(f, _, _)| var_name(f) == name) else {
            let hint = match name {
                "HALLWATCH_CLOUD_ARGS" => {
                    "is no longer read: put serve's options in the configuration file \
                     (/etc/hallwatch/cloud.toml) and remove it from /etc/hallwatch/cloud.env"
                        .to_owned()
                }
                "HALLWATCH_CLOUD_DATABASE_URL" => {
                    "is not read: the database URL's variable is DATABASE_URL".to_owned()
                }
                _ => format!(
                    "is not a setting of cloud-sync serve; the variables are {}",
                    FIELDS
                        .iter()
                        .map(|(f, _, _)| var_name(f))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(refuse(hint));
        };
        let Some(value) = value.to_str() else {
            return Err(refuse("is not valid UTF-8".into()));
        };
        if value.len() > MAX_VAR_BYTES {
            return Err(refuse(format!(
                "is {} bytes long, at most {MAX_VAR_BYTES} are allowed",
                value.len()
            )));
        }
        found.push((field, name.to_owned(), value.to_owned()));
    }
    Ok(found)
}

impl RawSettings {
    fn is_set(&self, field: &str) -> bool {
        match field {
            "database_url" => self.database_url.is_some(),
            "data_dir" => self.data_dir.is_some(),
            "listen" => self.listen.is_some(),
            "sync_listen" => self.sync_listen.is_some(),
            "metrics_listen" => self.metrics_listen.is_some(),
            "sync_names" => self.sync_names.as_ref().is_some_and(|v| !v.is_empty()),
            "pool_size" => self.pool_size.is_some(),
            "rate_per_sec" => self.rate_per_sec.is_some(),
            "rate_burst" => self.rate_burst.is_some(),
            "gateway_offline_after_s" => self.gateway_offline_after_s.is_some(),
            "trusted_proxies" => self.trusted_proxies.as_ref().is_some_and(|v| !v.is_empty()),
            _ => false,
        }
    }

    /// `field`'s value from `other` in place of this one's.
    fn take_field(&mut self, field: &str, other: &RawSettings) {
        match field {
            "database_url" => self.database_url.clone_from(&other.database_url),
            "data_dir" => self.data_dir.clone_from(&other.data_dir),
            "listen" => self.listen.clone_from(&other.listen),
            "sync_listen" => self.sync_listen.clone_from(&other.sync_listen),
            "metrics_listen" => self.metrics_listen.clone_from(&other.metrics_listen),
            "sync_names" => self.sync_names.clone_from(&other.sync_names),
            "pool_size" => self.pool_size = other.pool_size,
            "rate_per_sec" => self.rate_per_sec = other.rate_per_sec,
            "rate_burst" => self.rate_burst = other.rate_burst,
            "gateway_offline_after_s" => {
                self.gateway_offline_after_s = other.gateway_offline_after_s;
            }
            "trusted_proxies" => self.trusted_proxies.clone_from(&other.trusted_proxies),
            _ => {}
        }
    }

    fn set_from_env(&mut self, field: &str, var: &str, value: &str) -> Result<(), SettingsError> {
        let refuse = |reason: String| SettingsError {
            origin: var.to_owned(),
            reason,
        };
        let whole = || {
            let digits = value.trim();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(refuse(format!("{value:?} is not a whole number")));
            }
            digits
                .parse::<u64>()
                .map_err(|_| refuse(format!("{digits} is far too large")))
        };
        let list = || {
            value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        match field {
            "database_url" => self.database_url = Some(value.to_owned()),
            "data_dir" => self.data_dir = Some(PathBuf::from(value)),
            "listen" => self.listen = Some(value.to_owned()),
            "sync_listen" => self.sync_listen = Some(value.to_owned()),
            "metrics_listen" => self.metrics_listen = Some(value.to_owned()),
            "sync_names" => self.sync_names = Some(list()),
            "pool_size" => self.pool_size = Some(whole()?),
            "rate_per_sec" => {
                let n = value
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| refuse(format!("{value:?} is not a number")))?;
                self.rate_per_sec = Some(n);
            }
            "rate_burst" => self.rate_burst = Some(whole()?),
            "gateway_offline_after_s" => self.gateway_offline_after_s = Some(whole()?),
            "trusted_proxies" => self.trusted_proxies = Some(list()),
            _ => {}
        }
        Ok(())
    }

    fn validate(self, origins: &HashMap<&'static str, Origin>) -> Result<Config, SettingsError> {
        let refuse = |field: &'static str, reason: String| SettingsError {
            origin: match origins.get(field) {
                Some(Origin::Flag(flag)) => (*flag).to_owned(),
                Some(Origin::Env(var)) => var.clone(),
                Some(Origin::File(path)) => format!("{field} in {}", path.display()),
                None => field.to_owned(),
            },
            reason,
        };
        let within = |field, value: Option<u64>, default: u64, min: u64, max: u64| match value {
            None => Ok(default),
            Some(v) if (min..=max).contains(&v) => Ok(v),
            Some(v) => Err(refuse(field, format!("{v} is outside {min}..={max}"))),
        };
        let address = |field, value: Option<String>, default: &str| {
            let text = value.unwrap_or_else(|| default.to_owned());
            text.parse::<SocketAddr>().map_err(|_| {
                refuse(
                    field,
                    format!("{text:?} is not an address:port (e.g. 127.0.0.1:8080)"),
                )
            })
        };

        let Some(url) = self.database_url else {
            return Err(refuse(
                "database_url",
                "not set: give DATABASE_URL=postgres://hallwatch_app:PASSWORD@HOST/DB (in \
                 /etc/hallwatch/cloud.env for the service), database_url in the \
                 configuration file, or --database-url"
                    .into(),
            ));
        };
        let database: crate::db::ConnectOptions = url.parse().map_err(|e| {
            refuse(
                "database_url",
                format!(
                    "not a PostgreSQL URL ({e}); e.g. postgres://hallwatch_app:PASSWORD@HOST/DB"
                ),
            )
        })?;
        let Some(data_dir) = self.data_dir else {
            return Err(refuse(
                "data_dir",
                "not set: give --data-dir, HALLWATCH_CLOUD_DATA_DIR or data_dir in the \
                 configuration file (the service uses /var/lib/hallwatch/cloud)"
                    .into(),
            ));
        };
        if data_dir.as_os_str().is_empty() || data_dir.as_os_str().len() > 4_096 {
            return Err(refuse(
                "data_dir",
                "must be a path of 1 to 4096 bytes".into(),
            ));
        }
        let listen = address("listen", self.listen, DEFAULT_LISTEN)?;
        let sync_listen = address("sync_listen", self.sync_listen, DEFAULT_SYNC_LISTEN)?;
        if listen.port() != 0 && listen.port() == sync_listen.port() {
            return Err(refuse(
                "sync_listen",
                format!(
                    "uses port {} as listen does; give them different ports",
                    listen.port()
                ),
            ));
        }
        let metrics_listen = address(
            "metrics_listen",
            self.metrics_listen,
            DEFAULT_METRICS_LISTEN,
        )?;
        if metrics_listen.port() != 0
            && (metrics_listen.port() == listen.port()
                || metrics_listen.port() == sync_listen.port())
        {
            return Err(refuse(
                "metrics_listen",
                format!(
                    "uses port {} as another listener does; give it a port of its own",
                    metrics_listen.port()
                ),
            ));
        }
        let sync_names = self
            .sync_names
            .filter(|names| !names.is_empty())
            .unwrap_or_else(|| DEFAULT_SYNC_NAMES.map(str::to_owned).to_vec());
        if sync_names.len() > MAX_NAMES {
            return Err(refuse(
                "sync_names",
                format!(
                    "{} names, at most {MAX_NAMES} are allowed",
                    sync_names.len()
                ),
            ));
        }
        for name in &sync_names {
            let ok = (1..=253).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:_".contains(c));
            if !ok {
                return Err(refuse(
                    "sync_names",
                    format!(
                        "{name:?} is not a DNS name or IP address (letters, digits, '.', '-', \
                         at most 253 characters)"
                    ),
                ));
            }
        }
        let pool_size = within("pool_size", self.pool_size, 16, 1, 500)?;
        let rate_per_sec = match self.rate_per_sec {
            None => 20.0,
            Some(r) if r.is_finite() && r > 0.0 && r <= 100_000.0 => r,
            Some(r) => {
                return Err(refuse(
                    "rate_per_sec",
                    format!("{r} must be a number above 0 and at most 100000"),
                ));
            }
        };
        let rate_burst = within("rate_burst", self.rate_burst, 40, 1, 100_000)?;
        let offline_after = within(
            "gateway_offline_after_s",
            self.gateway_offline_after_s,
            Liveness::DEFAULT_OFFLINE_AFTER.as_secs(),
            1,
            86_400,
        )?;
        let trusted_proxies = self.trusted_proxies.unwrap_or_default();
        if trusted_proxies.len() > MAX_NAMES {
            return Err(refuse(
                "trusted_proxies",
                format!(
                    "{} addresses, at most {MAX_NAMES} are allowed",
                    trusted_proxies.len()
                ),
            ));
        }
        let trusted_proxies = trusted_proxies
            .iter()
            .map(|ip| {
                ip.parse::<IpAddr>().map_err(|_| {
                    refuse(
                        "trusted_proxies",
                        format!("{ip:?} is not an IP address (e.g. 10.0.0.5 or fd00::5)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            database,
            pool_size: u32::try_from(pool_size).unwrap_or(500),
            data_dir,
            listen,
            sync_listen,
            metrics_listen,
            sync_names,
            limits: Limits::DEFAULT,
            rate_per_sec,
            rate_burst: u32::try_from(rate_burst).unwrap_or(100_000),
            liveness: Liveness::new(Duration::from_secs(offline_after)),
            login_limits: LoginLimits::default(),
            trusted_proxies,
        })
    }
}
