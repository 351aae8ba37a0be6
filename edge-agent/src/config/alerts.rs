//! `[alerts]`: when an unacknowledged alert escalates, how long its presser may cancel it,
//! and which alert each press pattern raises.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::press_map::{DEFAULT as DEFAULT_PRESS_MAP, parse_press_map};

/// How the engine behaves; from `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSettings {
    /// An alert nobody acknowledged escalates after this long.
    pub escalate_after: Duration,
    /// The presser may cancel their own alert within this long after it was raised.
    pub cancel_window: Duration,
    /// Which alert each press pattern raises, unless a device has its own mapping.
    pub press_map: firmware_protocol::PressMap,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            escalate_after: Duration::from_secs(60),
            cancel_window: Duration::from_secs(10),
            press_map: DEFAULT_PRESS_MAP,
        }
    }
}

/// `[alerts]`: every field optional, defaults from [`AlertSettings::default`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    pub escalate_after_s: Option<u64>,
    pub cancel_window_s: Option<u64>,
    pub press_map: Option<String>,
}

impl RawAlerts {
    pub(super) fn validate(self) -> Result<AlertSettings, ConfigError> {
        let defaults = AlertSettings::default();
        let seconds = |field, value: Option<u64>, default: Duration, max: u64| match value {
            None => Ok(default),
            Some(s) if (1..=max).contains(&s) => Ok(Duration::from_secs(s)),
            Some(s) => Err(ConfigError::Invalid {
                field,
                reason: format!("{s} is outside 1..={max} seconds"),
            }),
        };
        Ok(AlertSettings {
            escalate_after: seconds(
                "alerts.escalate_after_s",
                self.escalate_after_s,
                defaults.escalate_after,
                3_600,
            )?,
            cancel_window: seconds(
                "alerts.cancel_window_s",
                self.cancel_window_s,
                defaults.cancel_window,
                600,
            )?,
            press_map: match self.press_map {
                None => defaults.press_map,
                Some(text) => {
                    parse_press_map(&text, DEFAULT_PRESS_MAP).map_err(|e| ConfigError::Invalid {
                        field: "alerts.press_map",
                        reason: e.to_string(),
                    })?
                }
            },
        })
    }
}
