//! What an integration is: a client on the school network (strobe controller, PA system,
//! signage) that reads the gateway's JSON messages under `hallwatch/` and nothing else.
//!
//! This module holds the pure rules: [`IntegrationId`], the subscription filters an
//! integration may use ([`check_filter`]) and MQTT topic matching ([`filter_matches`]). The
//! gate enforces them; `install` and `store` carry the id.
//!
//! An integration's certificate is issued by the gateway CA like a device's, with the same CN
//! (its id) and O (the school), and additionally [`INTEGRATION_OU`] as its organizational unit.
//! Device certificates carry no OU, so neither can pass for the other.

use std::fmt;
use std::str::FromStr;

pub use crate::broker::INTEGRATION_PREFIX;

/// The organizational unit (OU) that marks an integration's certificate.
pub const INTEGRATION_OU: &str = "integration";

/// The topic of the school summary.
pub const STATUS_TOPIC: &str = "hallwatch/status";

/// Where each alert's latest state is published: `hallwatch/alerts/{alert_id}`.
pub const ALERTS_PREFIX: &str = "hallwatch/alerts/";

/// An integration's name: 1 to 32 ASCII letters, digits, `-` and `_` (like a device id, and
/// for the same reasons: it is a certificate CN, a file name and a database key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntegrationId(String);

/// Why a text is not an integration id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrationIdError {
    #[error("invalid integration id: it is empty")]
    Empty,
    #[error("invalid integration id: it is {0} bytes long, at most 32 are allowed")]
    TooLong(usize),
    #[error(
        "invalid integration id: character {ch:?} at byte {at} is not allowed (only ASCII \
         letters, digits, '-' and '_')"
    )]
    InvalidChar { ch: char, at: usize },
}

impl IntegrationId {
    /// The longest id allowed, in bytes.
    pub const MAX_LEN: usize = 32;

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IntegrationId {
    type Err = IntegrationIdError;

    fn from_str(s: &str) -> Result<Self, IntegrationIdError> {
        if s.is_empty() {
            return Err(IntegrationIdError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(IntegrationIdError::TooLong(s.len()));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        match s.char_indices().find(|&(_, c)| !allowed(c)) {
            Some((at, ch)) => Err(IntegrationIdError::InvalidChar { ch, at }),
            None => Ok(IntegrationId(s.to_owned())),
        }
    }
}

impl fmt::Display for IntegrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an integration may not subscribe to a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("{0:?} is not under hallwatch/")]
    Outside(String),
    #[error("{0:?} is not a valid MQTT topic filter")]
    Invalid(String),
}

/// Checks that `filter` is a valid MQTT 3.1.1 topic filter under `hallwatch/`: its first level
/// is literally `hallwatch` (not a wildcard), `#` appears only as the whole last level and `+`
/// only as a whole level. `hallwatch/#`, `hallwatch/alerts/+` and `hallwatch/status` pass;
/// `#`, `+/status` and `d/+/up` do not.
pub fn check_filter(filter: &str) -> Result<(), FilterError> {
    let mut levels = filter.split('/');
    if levels.next() != Some("hallwatch") || !filter.starts_with(INTEGRATION_PREFIX) {
        return Err(FilterError::Outside(filter.to_owned()));
    }
    let rest: Vec<&str> = levels.collect();
    for (i, level) in rest.iter().enumerate() {
        let wild = level.contains(['#', '+']);
        let ok = !wild || *level == "+" || (*level == "#" && i == rest.len() - 1);
        if !ok || level.contains('\0') {
            return Err(FilterError::Invalid(filter.to_owned()));
        }
    }
    Ok(())
}

/// Whether `topic` matches `filter` (MQTT 3.1.1 §4.7: `+` is one level, `#` the rest,
/// including none).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        if level == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(t) if level == "+" || level == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_device_id_alphabet() {
        assert_eq!(
            "signage-1".parse::<IntegrationId>().unwrap().as_str(),
            "signage-1"
        );
        assert_eq!("".parse::<IntegrationId>(), Err(IntegrationIdError::Empty));
        assert!(matches!(
            "a/b".parse::<IntegrationId>(),
            Err(IntegrationIdError::InvalidChar { ch: '/', at: 1 })
        ));
        assert_eq!(
            "x".repeat(33).parse::<IntegrationId>(),
            Err(IntegrationIdError::TooLong(33))
        );
    }

    #[test]
    fn only_filters_under_hallwatch_are_allowed() {
        for ok in [
            "hallwatch/#",
            "hallwatch/status",
            "hallwatch/alerts/+",
            "hallwatch/alerts/#",
            "hallwatch/+/x",
        ] {
            assert_eq!(check_filter(ok), Ok(()), "{ok}");
        }
        for outside in [
            "#",
            "+/status",
            "d/+/down",
            "hallwatch",
            "hallwatchx/#",
            "+/#",
            "",
        ] {
            assert!(
                matches!(check_filter(outside), Err(FilterError::Outside(_))),
                "{outside}"
            );
        }
        for invalid in [
            "hallwatch/#/x",
            "hallwatch/al#",
            "hallwatch/a+",
            "hallwatch/\0",
        ] {
            assert!(
                matches!(check_filter(invalid), Err(FilterError::Invalid(_))),
                "{invalid}"
            );
        }
    }

    #[test]
    fn matching_follows_mqtt() {
        let t = "hallwatch/alerts/0190";
        assert!(filter_matches("hallwatch/#", t));
        assert!(filter_matches("hallwatch/alerts/+", t));
        assert!(filter_matches("hallwatch/+/+", t));
        assert!(filter_matches(t, t));
        assert!(!filter_matches("hallwatch/status", t));
        assert!(!filter_matches("hallwatch/alerts", t));
        assert!(!filter_matches("hallwatch/+", t));
        assert!(!filter_matches("hallwatch/alerts/+/x", t));
        assert!(filter_matches("hallwatch/#", "hallwatch/status"));
        assert!(filter_matches("hallwatch/status/#", "hallwatch/status"));
    }
}
