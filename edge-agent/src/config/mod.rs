//! `agent.toml`: read into [`RawConfig`] (serde, unknown fields refused), then validated into
//! [`Config`], whose fields are typed. Every error names the field that is wrong.
//!
//! `core.rs` holds the engine's sections, `cloud.rs` the `[cloud]` section that
//! `edge-agent enroll` writes, `sync.rs` the `[sync]` section (how the outbox is uploaded),
//! `env.rs` the `HALLWATCH_<SECTION>_<FIELD>` variables that override the file's values.
//! docs/configuration.md describes every field; a test keeps it complete.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use std::time::Duration;

use serde::Deserialize;
use shared::ids::SchoolId;

mod alerts;
mod cloud;
mod core;
pub mod env;
pub mod press_map;
mod sync;

pub use self::alerts::{AlertSettings, RawAlerts};
pub use self::cloud::{CloudSettings, CloudUrl, RawCloud, SyncUrl, UrlError};
pub use self::core::{HealthSettings, MAX_ROOMS, RawHealth, RawRoom, RawSnapshots};
pub use self::press_map::{
    DEFAULT as DEFAULT_PRESS_MAP, DevicePressMap, PressMapError, format_press_map, parse_press_map,
};
pub use self::sync::{RawSync, SyncSettings};

use crate::gate::GateLimits;
use crate::occupancy::{OccupancyPolicy, SnapshotPolicy};
use crate::store::RoomRow;

/// The config file's name inside the data directory.
pub const CONFIG_FILE: &str = "agent.toml";
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
    pub rooms: Vec<RoomRow>,
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

/// `[gate]`: every field optional, defaults from [`GateLimits::default`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    pub max_connections: Option<usize>,
    pub max_pending: Option<usize>,
    pub max_pending_per_ip: Option<usize>,
    pub handshake_timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub max_packet_bytes: Option<usize>,
    pub device_uplinks_per_s: Option<usize>,
    pub total_uplinks_per_s: Option<usize>,
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
        let path = data_dir.join(CONFIG_FILE);
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
            path: PathBuf::from(CONFIG_FILE),
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

    /// `agent.toml` for this configuration, with comments for whoever edits it next.
    pub fn to_toml(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let list = |items: Vec<String>| {
            let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
            format!("[{}]", quoted.join(", "))
        };
        format!(
            "# Hallwatch gateway configuration, written by `edge-agent init`.\n\
             # Unknown keys are refused. Changing hostnames or ips here does not re-issue the\n\
             # gateway's server certificate.\n\n\
             [school]\n\
             # The school's id (letters, digits, '-' and '_'); it is in every device certificate.\n\
             id = {}\n\
             name = {}\n\
             # Students enrolled: the snapshot's absence is this minus those counted present.\n\
             students_total = {}\n\n\
             [gateway]\n\
             # How devices reach this gateway; the first entry goes into provisioning bundles.\n\
             hostnames = {}\n\
             ips = {}\n\n\
             [mqtt]\n\
             # The device-facing MQTT over mutual TLS listener.\n\
             listen = {}\n\n\
             [http]\n\
             # The local dashboard.\n\
             listen = {}\n\n\
             [gate]\n\
             # Device connection limits: connections held at once, still handshaking (in all\n\
             # and per source address), time allowed for the TLS handshake and for the MQTT\n\
             # CONNECT, and the largest MQTT packet a device may send.\n\
             max_connections = {}\n\
             max_pending = {}\n\
             max_pending_per_ip = {}\n\
             handshake_timeout_ms = {}\n\
             connect_timeout_ms = {}\n\
             max_packet_bytes = {}\n\
             # Publishes per second from one device, and from all devices together; beyond\n\
             # them the gate slows its reading (TCP back-pressure), it never drops a frame.\n\
             device_uplinks_per_s = {}\n\
             total_uplinks_per_s = {}\n\n\
             [alerts]\n\
             # An alert nobody acknowledges within escalate_after_s escalates (severity up,\n\
             # announced again). The presser may cancel their own alert within\n\
             # cancel_window_s. press_map: which alert each press pattern raises (panic,\n\
             # medical, fire, lockdown, intruder or ignore); a device may have its own.\n\
             escalate_after_s = {}\n\
             cancel_window_s = {}\n\
             press_map = {}\n\n\
             [health]\n\
             # Devices send a heartbeat every heartbeat_interval_s; one silent for\n\
             # offline_after_s counts as offline (at once if its connection drops with a last\n\
             # will). Below battery_low_mv its battery is reported low.\n\
             heartbeat_interval_s = {}\n\
             offline_after_s = {}\n\
             battery_low_mv = {}\n\n\
             [snapshots]\n\
             # A school snapshot is taken debounce_ms after a change, every heartbeat_s\n\
             # regardless, and in full every full_s. A room whose camera has not reported for\n\
             # stale_after_s is marked stale and left out of the totals.\n\
             debounce_ms = {}\n\
             heartbeat_s = {}\n\
             full_s = {}\n\
             stale_after_s = {}\n\n\
             {}\n\
             # The school's rooms: where each is and how many it holds (a camera counting more\n\
             # than twice the capacity is refused). Devices are registered in these rooms.\n\
             # [[rooms]]\n\
             # id = \"A-101\"\n\
             # building = \"A\"\n\
             # floor = \"1\"\n\
             # capacity = 30\n{}{}",
            quote(self.school_id.as_str()),
            quote(&self.school_name),
            self.occupancy.students_total,
            list(self.hostnames.clone()),
            list(self.ips.iter().map(IpAddr::to_string).collect()),
            quote(&self.mqtt_listen.to_string()),
            quote(&self.http_listen.to_string()),
            self.gate.max_connections,
            self.gate.max_pending,
            self.gate.max_pending_per_ip,
            self.gate.handshake_timeout.as_millis(),
            self.gate.connect_timeout.as_millis(),
            self.gate.max_packet_bytes,
            self.gate.device_uplinks_per_s,
            self.gate.total_uplinks_per_s,
            self.alerts.escalate_after.as_secs(),
            self.alerts.cancel_window.as_secs(),
            quote(&format_press_map(&self.alerts.press_map)),
            self.health.heartbeat_interval.as_secs(),
            self.health.policy.offline_after.as_secs(),
            self.health.policy.battery_low_mv,
            self.snapshots.debounce.as_millis(),
            self.snapshots.heartbeat.as_secs(),
            self.snapshots.full.as_secs(),
            self.occupancy.stale_after.as_secs(),
            self.sync.to_toml(),
            self.rooms_toml(),
            self.cloud
                .as_ref()
                .map(|cloud| format!("\n{}", cloud.to_toml()))
                .unwrap_or_default(),
        )
    }
}

impl Config {
    fn rooms_toml(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut out = String::new();
        for room in &self.rooms {
            out.push_str(&format!("\n[[rooms]]\nid = {}\n", quote(room.id.as_str())));
            if let Some(b) = &room.building {
                out.push_str(&format!("building = {}\n", quote(b)));
            }
            if let Some(f) = &room.floor {
                out.push_str(&format!("floor = {}\n", quote(f)));
            }
            if let Some(c) = room.capacity {
                out.push_str(&format!("capacity = {c}\n"));
            }
        }
        out
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

impl RawGate {
    fn validate(self) -> Result<GateLimits, ConfigError> {
        let defaults = GateLimits::default();
        let within = |field: &'static str, value: Option<usize>, default, min, max| match value {
            None => Ok(default),
            Some(v) if (min..=max).contains(&v) => Ok(v),
            Some(v) => Err(ConfigError::Invalid {
                field,
                reason: format!("{v} is outside {min}..={max}"),
            }),
        };
        let millis = |field, value: Option<u64>, default: Duration| {
            let default = usize::try_from(default.as_millis()).unwrap_or(usize::MAX);
            let value = value.map(|v| usize::try_from(v).unwrap_or(usize::MAX));
            within(field, value, default, 100, 60_000).map(|ms| Duration::from_millis(ms as u64))
        };
        let max_connections = within(
            "gate.max_connections",
            self.max_connections,
            defaults.max_connections,
            1,
            100_000,
        )?;
        let max_pending = within(
            "gate.max_pending",
            self.max_pending,
            defaults.max_pending,
            1,
            max_connections,
        )?;
        Ok(GateLimits {
            max_connections,
            max_pending,
            max_pending_per_ip: within(
                "gate.max_pending_per_ip",
                self.max_pending_per_ip,
                defaults.max_pending_per_ip,
                1,
                max_pending,
            )?,
            handshake_timeout: millis(
                "gate.handshake_timeout_ms",
                self.handshake_timeout_ms,
                defaults.handshake_timeout,
            )?,
            connect_timeout: millis(
                "gate.connect_timeout_ms",
                self.connect_timeout_ms,
                defaults.connect_timeout,
            )?,
            // Frames are at most 256 bytes; the headroom is MQTT's own overhead and topics.
            max_packet_bytes: within(
                "gate.max_packet_bytes",
                self.max_packet_bytes,
                defaults.max_packet_bytes,
                300,
                65_536,
            )?,
            device_uplinks_per_s: rate(within(
                "gate.device_uplinks_per_s",
                self.device_uplinks_per_s,
                defaults.device_uplinks_per_s as usize,
                1,
                1_000_000,
            )?),
            total_uplinks_per_s: rate(within(
                "gate.total_uplinks_per_s",
                self.total_uplinks_per_s,
                defaults.total_uplinks_per_s as usize,
                100,
                1_000_000,
            )?),
        })
    }
}

/// A rate already checked to be at most 1,000,000.
fn rate(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[school]\nid = \"lincoln-high\"\nname = \"Lincoln High\"\n";

    fn field_of(err: ConfigError) -> String {
        match err {
            ConfigError::Invalid { field, .. } => field.to_owned(),
            other => other.to_string(),
        }
    }

    #[test]
    fn defaults_fill_the_listeners() {
        let config = Config::parse(GOOD).unwrap();
        assert_eq!(config.mqtt_listen, DEFAULT_MQTT_LISTEN.parse().unwrap());
        assert_eq!(config.http_listen, DEFAULT_HTTP_LISTEN.parse().unwrap());
        assert_eq!(config.device_host(), None);
    }

    #[test]
    fn written_config_reads_back_the_same() {
        let mut config = Config::parse(GOOD).unwrap();
        config.school_name = "St. \"Quoted\" School".into();
        config.hostnames = vec!["gw.local".into()];
        config.ips = vec!["10.0.0.2".parse().unwrap()];
        assert_eq!(Config::parse(&config.to_toml()).unwrap(), config);
        assert_eq!(config.device_host().as_deref(), Some("gw.local"));
    }

    #[test]
    fn the_cloud_section_reads_back_and_names_a_bad_field() {
        const CLOUD: &str = "[cloud]\nurl = \"https://cloud.example.org\"\n\
                             sync_url = \"https://sync.example.org:8443\"\ngateway_id = \"gw-1\"\n";
        assert_eq!(Config::parse(GOOD).unwrap().cloud, None);
        let config = Config::parse(&format!("{GOOD}{CLOUD}")).unwrap();
        let cloud = config.cloud.clone().unwrap();
        assert_eq!(cloud.sync_url.as_str(), "https://sync.example.org:8443/");
        assert_eq!(Config::parse(&config.to_toml()).unwrap(), config);
        for (from, to, field) in [
            (
                "https://cloud.example.org",
                "http://cloud.example.org",
                "cloud.url",
            ),
            ("https://cloud.example.org", "not a url", "cloud.url"),
            (
                "https://sync.example.org:8443",
                "http://127.0.0.1:8443",
                "cloud.sync_url",
            ),
            ("gw-1", "gw/1", "cloud.gateway_id"),
        ] {
            let text = format!("{GOOD}{}", CLOUD.replace(from, to));
            assert_eq!(field_of(Config::parse(&text).unwrap_err()), field, "{to}");
        }
        let missing = format!("{GOOD}[cloud]\nurl = \"https://cloud.example.org\"\n");
        let err = Config::parse(&missing).unwrap_err().to_string();
        assert!(err.contains("sync_url"), "{err}");
    }

    #[test]
    fn refuses_a_bad_school_id() {
        let err = Config::parse("[school]\nid = \"a/b\"\nname = \"X\"\n").unwrap_err();
        assert_eq!(field_of(err), "school.id");
    }

    #[test]
    fn refuses_a_blank_or_long_school_name() {
        let err = Config::parse("[school]\nid = \"a\"\nname = \"  \"\n").unwrap_err();
        assert_eq!(field_of(err), "school.name");
        let long = format!("[school]\nid = \"a\"\nname = \"{}\"\n", "x".repeat(201));
        assert_eq!(field_of(Config::parse(&long).unwrap_err()), "school.name");
    }

    #[test]
    fn refuses_a_bad_listen_address() {
        let text = format!("{GOOD}[mqtt]\nlisten = \"8883\"\n");
        assert_eq!(field_of(Config::parse(&text).unwrap_err()), "mqtt.listen");
        let text = format!("{GOOD}[http]\nlisten = \"nowhere:80\"\n");
        assert_eq!(field_of(Config::parse(&text).unwrap_err()), "http.listen");
    }

    #[test]
    fn gate_limits_default_and_are_bounded() {
        assert_eq!(Config::parse(GOOD).unwrap().gate, GateLimits::default());
        let text = format!("{GOOD}[gate]\nmax_connections = 10\nhandshake_timeout_ms = 250\n");
        let gate = Config::parse(&text).unwrap().gate;
        assert_eq!(gate.max_connections, 10);
        assert_eq!(gate.handshake_timeout, Duration::from_millis(250));
        for (line, field) in [
            ("max_connections = 0", "gate.max_connections"),
            ("max_packet_bytes = 10", "gate.max_packet_bytes"),
            ("handshake_timeout_ms = 5", "gate.handshake_timeout_ms"),
            ("connect_timeout_ms = 600000", "gate.connect_timeout_ms"),
            ("max_pending = 100000", "gate.max_pending"),
            ("device_uplinks_per_s = 0", "gate.device_uplinks_per_s"),
            ("total_uplinks_per_s = 2000000", "gate.total_uplinks_per_s"),
        ] {
            let text = format!("{GOOD}[gate]\n{line}\n");
            assert_eq!(field_of(Config::parse(&text).unwrap_err()), field, "{line}");
        }
    }

    #[test]
    fn sync_settings_default_and_are_bounded() {
        assert_eq!(Config::parse(GOOD).unwrap().sync, SyncSettings::default());
        let text = format!("{GOOD}[sync]\nbatch_max_records = 50\noutbox_budget_mb = 2\n");
        let sync = Config::parse(&text).unwrap().sync;
        assert_eq!(sync.batch_max_records, 50);
        assert_eq!(sync.outbox_budget_bytes, 2 * 1024 * 1024);
        for (lines, field) in [
            ("batch_max_records = 0", "sync.batch_max_records"),
            ("batch_max_records = 10001", "sync.batch_max_records"),
            ("batch_max_bytes = 100", "sync.batch_max_bytes"),
            ("batch_wait_ms = 60001", "sync.batch_wait_ms"),
            ("heartbeat_s = 0", "sync.heartbeat_s"),
            ("request_timeout_s = 601", "sync.request_timeout_s"),
            ("backoff_min_ms = 5", "sync.backoff_min_ms"),
            ("backoff_max_s = 0", "sync.backoff_max_s"),
            (
                "backoff_min_ms = 5000\nbackoff_max_s = 2",
                "sync.backoff_max_s",
            ),
            ("thin_after_s = 10", "sync.thin_after_s"),
            ("thin_keep_every_s = 0", "sync.thin_keep_every_s"),
            ("outbox_budget_mb = 0", "sync.outbox_budget_mb"),
        ] {
            let text = format!("{GOOD}[sync]\n{lines}\n");
            assert_eq!(
                field_of(Config::parse(&text).unwrap_err()),
                field,
                "{lines}"
            );
        }
        let text = format!("{GOOD}[sync]\nbatch_size = 10\n");
        assert!(
            Config::parse(&text)
                .unwrap_err()
                .to_string()
                .contains("batch_size")
        );
    }

    #[test]
    fn refuses_a_bad_ip() {
        let text = format!("{GOOD}[gateway]\nips = [\"10.0.0.300\"]\n");
        assert_eq!(field_of(Config::parse(&text).unwrap_err()), "gateway.ips");
    }

    #[test]
    fn refuses_unknown_fields_and_names_them() {
        let text = format!("{GOOD}[mqtt]\nlisten = \"0.0.0.0:1\"\nport = 1\n");
        let err = Config::parse(&text).unwrap_err().to_string();
        assert!(err.contains("port"), "{err}");
        let err = Config::parse(&format!("{GOOD}[extra]\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("extra"), "{err}");
    }

    #[test]
    fn a_missing_file_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::load(dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains(CONFIG_FILE), "{err}");
    }
}
