//! `[gate]`: the device gate's connection limits, timeouts and publish rates.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// The gate's limits; `agent.toml`'s `[gate]` section sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateLimits {
    /// Most connections at once, authenticated or not.
    pub max_connections: usize,
    /// Most connections still in the TLS handshake or before their MQTT CONNECT.
    pub max_pending: usize,
    /// Most such pending connections from one source address.
    pub max_pending_per_ip: usize,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed between the handshake and the MQTT CONNECT.
    pub connect_timeout: Duration,
    /// Largest MQTT packet a device may send, in bytes (the "remaining length").
    pub max_packet_bytes: usize,
    /// Publishes per second one device may send (also its burst). Beyond it the gate stops
    /// reading that device's socket for a moment: TCP pushes back, nothing is dropped.
    pub device_uplinks_per_s: u32,
    /// Publishes per second all devices together may send. rumqttd buffers a bounded log
    /// per topic and silently drops the oldest entries when the agent falls behind, so the
    /// gate must never let in more than the agent consumes.
    pub total_uplinks_per_s: u32,
}

impl Default for GateLimits {
    fn default() -> Self {
        GateLimits {
            max_connections: 4000,
            max_pending: 512,
            max_pending_per_ip: 32,
            handshake_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            max_packet_bytes: 1024,
            device_uplinks_per_s: 1_000,
            total_uplinks_per_s: 100_000,
        }
    }
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

impl RawGate {
    pub(super) fn validate(self) -> Result<GateLimits, ConfigError> {
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
