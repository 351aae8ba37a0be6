//! `agent.toml`: read into [`RawConfig`] (serde, unknown fields refused), then validated into
//! [`Config`], whose fields are typed. Every error names the field that is wrong.
//!
//! `config` owns every validated settings type of the agent and imports nothing of the agent
//! but [`crate::layout`] (itself a leaf: where `agent.toml` is), so any module may depend on
//! it and it on none of them.
//!
//! - `core.rs`: `[health]`, `[snapshots]`, `[[rooms]]`, validated into `policy.rs`'s types
//!   ([`HealthPolicy`], [`OccupancyPolicy`], [`SnapshotPolicy`], [`Room`]);
//! - `alerts.rs`: `[alerts]` ([`AlertSettings`]); `press_map.rs`: press mappings, the
//!   gateway's and a device's own ([`DevicePressMap`]);
//! - `gate.rs`: `[gate]` ([`GateLimits`]);
//! - `cloud.rs`: the `[cloud]` section that `edge-agent enroll` writes; `sync.rs`: `[sync]`
//!   (how the outbox is uploaded);
//! - `env.rs`: the `HALLWATCH_<SECTION>_<FIELD>` variables that override the file's values;
//! - `write.rs`: [`Config::to_toml`], the file written back.
//!
//! docs/configuration.md describes every field; a test keeps it complete.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use shared::ids::SchoolId;

// The one module of the agent that config names: a leaf that imports nothing itself, so the
// data directory's file names are spelled in one place and config still depends on nothing
// that could depend on it.
use crate::layout;
pub use crate::layout::CONFIG_FILE;

mod alerts;
mod cloud;
mod core;
pub mod env;
mod gate;
mod policy;
pub mod press_map;
mod sync;
#[cfg(test)]
mod tests;
mod write;

pub use self::alerts::{AlertSettings, RawAlerts};
pub use self::cloud::{CloudSettings, CloudUrl, RawCloud, SyncUrl, UrlError};
pub use self::core::{HealthSettings, MAX_ROOMS, RawHealth, RawRoom, RawSnapshots};
pub use self::gate::{GateLimits, RawGate};
pub use self::policy::{HealthPolicy, OccupancyPolicy, Room, SnapshotPolicy};
pub use self::press_map::{
    DEFAULT as DEFAULT_PRESS_MAP, DevicePressMap, PressMapError, format_press_map, parse_press_map,
};
pub use self::sync::{RawSync, SyncSettings};

/// The longest school name accepted, in characters.
pub const MAX_SCHOOL_NAME_CHARS: usize = 200;
/// Where the device listener binds unless configured otherwise.
pub const DEFAULT_MQTT_LISTEN: &str = "0.0.0.0:8883";
/// Where the local dashboard binds unless configured otherwise.
pub const DEFAULT_HTTP_LISTEN: &str = "0.0.0.0:8080";

/// The gateway's validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The school this gateway serves.
    pub school_id: SchoolId,
    /// The school's name, for people.
    pub school_name: String,
    /// Names devices use to reach the gateway (the server certificate's DNS names).
    pub hostnames: Vec<String>,
    /// Addresses devices use to reach the gateway (the server certificate's IP names).
    pub ips: Vec<IpAddr>,
    /// The device-facing MQTT over TLS listener.
    pub mqtt_listen: SocketAddr,
    /// The local dashboard's listener.
    pub http_listen: SocketAddr,
    /// The device gate's connection limits and timeouts (`[gate]`).
    pub gate: GateLimits,
    /// Escalation, cancelling and press mapping (`[alerts]`).
    pub alerts: AlertSettings,
    /// Heartbeats, offline and battery thresholds (`[health]`).
    pub health: HealthSettings,
    /// When snapshots are emitted (`[snapshots]`).
    pub snapshots: SnapshotPolicy,
    /// When room counts go stale, and the roster size (`[school] students_total`).
    pub occupancy: OccupancyPolicy,
    /// The school's rooms (`[[rooms]]`).
    pub rooms: Vec<Room>,
    /// The cloud this gateway is enrolled with (`[cloud]`); `None` until `edge-agent enroll`.
    pub cloud: Option<CloudSettings>,
    /// How the outbox is uploaded (`[sync]`).
    pub sync: SyncSettings,
}

/// Why `agent.toml` was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// A `HALLWATCH_*` variable that is refused as such (unknown field, not a number, …).
    #[error("{var}: {reason}; change or unset it (the service's are in /etc/hallwatch/edge.env)")]
    Env { var: String, reason: String },
    /// A variable's value that the field's rules refuse.
    #[error(
        "{var} (overrides {field}): {reason}; change or unset it (the service's are in \
         /etc/hallwatch/edge.env)"
    )]
    EnvInvalid {
        var: String,
        field: &'static str,
        reason: String,
    },
}

/// `agent.toml` as written, before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub school: RawSchool,
    #[serde(default)]
    pub gateway: RawGateway,
    #[serde(default)]
    pub mqtt: RawListen,
    #[serde(default)]
    pub http: RawListen,
    #[serde(default)]
    pub gate: RawGate,
    #[serde(default)]
    pub alerts: RawAlerts,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub snapshots: RawSnapshots,
    #[serde(default)]
    pub rooms: Vec<RawRoom>,
    #[serde(default)]
    pub cloud: Option<RawCloud>,
    #[serde(default)]
    pub sync: RawSync,
}

/// `[school]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchool {
    pub id: String,
    pub name: String,
    /// Students enrolled, for the snapshot's absence figure.
    pub students_total: Option<u32>,
}

/// `[gateway]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub ips: Vec<String>,
}

/// `[mqtt]` and `[http]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub listen: Option<String>,
}

impl Config {
    /// Reads and validates `DATA_DIR/agent.toml`, with the process's `HALLWATCH_*`
    /// variables overriding its values (see [`env`]).
    pub fn load(data_dir: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(data_dir, env::process_vars())
    }

    /// [`Config::load`] with the variables given rather than the process's.
    pub fn load_with_env(
        data_dir: &Path,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Config, ConfigError> {
        let overrides = env::overrides(vars)?;
        let path = layout::config_file(data_dir);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let syntax = |source: toml::de::Error| ConfigError::Syntax {
            path: path.clone(),
            source: Box::new(source),
        };
        // The file alone first, so that its errors point at its lines.
        let raw: RawConfig = toml::from_str(&text).map_err(syntax)?;
        if overrides.is_empty() {
            return raw.validate();
        }
        let mut table: toml::Table = toml::from_str(&text).map_err(syntax)?;
        env::apply(&mut table, &overrides)?;
        let raw: RawConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Env {
                    var: overrides
                        .iter()
                        .map(|o| o.var.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    reason: e.to_string(),
                })?;
        raw.validate().map_err(|err| match err {
            ConfigError::Invalid { field, reason } => {
                match overrides.iter().find(|o| o.path == field) {
                    Some(o) => ConfigError::EnvInvalid {
                        var: o.var.clone(),
                        field,
                        reason,
                    },
                    None => ConfigError::Invalid { field, reason },
                }
            }
            other => other,
        })
    }

    /// Parses and validates the text of an `agent.toml`.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::from(layout::CONFIG_FILE),
            source: Box::new(e),
        })?;
        raw.validate()
    }

    /// The host devices are told to connect to: the first hostname, else the first IP.
    pub fn device_host(&self) -> Option<String> {
        self.hostnames
            .first()
            .cloned()
            .or_else(|| self.ips.first().map(IpAddr::to_string))
    }
}

impl RawConfig {
    /// Checks every field and converts it to its type.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let invalid = |field, reason: String| ConfigError::Invalid { field, reason };
        let school_id = SchoolId::try_from(self.school.id.as_str())
            .map_err(|e| invalid("school.id", e.to_string()))?;
        let school_name = validate_school_name(&self.school.name)
            .map_err(|reason| invalid("school.name", reason))?;
        let ips = self
            .gateway
            .ips
            .iter()
            .map(|ip| {
                ip.parse()
                    .map_err(|_| invalid("gateway.ips", format!("{ip:?} is not an IP address")))
            })
            .collect::<Result<Vec<IpAddr>, _>>()?;
        let listen = |field, raw: Option<String>, default: &str| {
            let text = raw.unwrap_or_else(|| default.to_owned());
            text.parse::<SocketAddr>()
                .map_err(|_| invalid(field, format!("{text:?} is not an address:port")))
        };
        let students_total = match self.school.students_total {
            None => 0,
            Some(n) if n <= 100_000 => n,
            Some(n) => {
                return Err(invalid(
                    "school.students_total",
                    format!("{n} is above 100000"),
                ));
            }
        };
        let (snapshots, occupancy) = self.snapshots.validate(students_total)?;
        Ok(Config {
            school_id,
            school_name,
            hostnames: self.gateway.hostnames,
            ips,
            mqtt_listen: listen("mqtt.listen", self.mqtt.listen, DEFAULT_MQTT_LISTEN)?,
            http_listen: listen("http.listen", self.http.listen, DEFAULT_HTTP_LISTEN)?,
            gate: self.gate.validate()?,
            alerts: self.alerts.validate()?,
            health: self.health.validate()?,
            snapshots,
            occupancy,
            rooms: self::core::validate_rooms(self.rooms)?,
            cloud: self.cloud.map(RawCloud::validate).transpose()?,
            sync: self.sync.validate()?,
        })
    }
}

/// `value`, or `default` when absent; refused with the field's name outside `min..=max`.
fn within(
    field: &'static str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(v) => Err(ConfigError::Invalid {
            field,
            reason: format!("{v} is outside {min}..={max}"),
        }),
    }
}

/// A school name: not blank, at most [`MAX_SCHOOL_NAME_CHARS`] characters, no control
/// characters. Returned trimmed.
pub fn validate_school_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    let chars = name.chars().count();
    if chars > MAX_SCHOOL_NAME_CHARS {
        return Err(format!(
            "is {chars} characters long, at most {MAX_SCHOOL_NAME_CHARS} are allowed"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(name.to_owned())
}
