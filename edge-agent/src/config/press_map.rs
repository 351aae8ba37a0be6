//! Which alert a press pattern raises: the gateway's default from `agent.toml`, or a device's
//! own mapping, both written `single=panic,double=medical,long_hold=lockdown`.
//!
//! A device's mapping is parsed once, when its profile is read ([`DevicePressMap`]): it names
//! only the patterns it changes, and the others follow the gateway's default, so the engine
//! lays it over `[alerts] press_map` without parsing text on every press.

use firmware_protocol::{PressAction, PressMap, PressPattern};
use shared::alert::AlertKind;

/// The mapping when nothing is configured: one press calls for help, two for a medical
/// emergency, holding the button locks the building down.
pub const DEFAULT: PressMap = PressMap {
    single: PressAction::Panic,
    double: PressAction::Medical,
    long_hold: PressAction::Lockdown,
};

/// Why a press mapping was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PressMapError {
    #[error("{0:?} is not `pattern=action` (patterns: single, double, long_hold)")]
    Syntax(String),
    #[error("unknown press pattern {0:?} (single, double, long_hold)")]
    Pattern(String),
    #[error("unknown press action {0:?} (ignore, panic, medical, fire, lockdown, intruder)")]
    Action(String),
    #[error("press pattern {0} is given twice")]
    Repeated(String),
}

/// A device's own press mapping: the patterns it sets; the others follow the gateway's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DevicePressMap {
    single: Option<PressAction>,
    double: Option<PressAction>,
    long_hold: Option<PressAction>,
}

impl DevicePressMap {
    /// Parses `single=…,double=…,long_hold=…`; any pattern may be left out.
    pub fn parse(text: &str) -> Result<DevicePressMap, PressMapError> {
        let mut map = DevicePressMap::default();
        let mut seen = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (pattern, action) = item
                .split_once('=')
                .ok_or_else(|| PressMapError::Syntax(item.to_owned()))?;
            let (pattern, action) = (pattern.trim(), action.trim());
            if seen.contains(&pattern) {
                return Err(PressMapError::Repeated(pattern.to_owned()));
            }
            seen.push(pattern);
            let action = Some(parse_action(action)?);
            match pattern {
                "single" => map.single = action,
                "double" => map.double = action,
                "long_hold" => map.long_hold = action,
                other => return Err(PressMapError::Pattern(other.to_owned())),
            }
        }
        Ok(map)
    }

    /// This mapping laid over `base`: the patterns it sets, `base`'s for the rest.
    pub fn over(&self, base: PressMap) -> PressMap {
        PressMap {
            single: self.single.unwrap_or(base.single),
            double: self.double.unwrap_or(base.double),
            long_hold: self.long_hold.unwrap_or(base.long_hold),
        }
    }
}

/// Parses `single=…,double=…,long_hold=…`; patterns left out keep `base`'s action.
pub fn parse_press_map(text: &str, base: PressMap) -> Result<PressMap, PressMapError> {
    DevicePressMap::parse(text).map(|map| map.over(base))
}

/// The mapping as text, the inverse of [`parse_press_map`].
pub fn format_press_map(map: &PressMap) -> String {
    format!(
        "single={},double={},long_hold={}",
        action_name(map.single),
        action_name(map.double),
        action_name(map.long_hold)
    )
}

/// The alert `pattern` raises under `map`; `None` when it is set to be ignored.
pub fn kind_of(map: &PressMap, pattern: PressPattern) -> Option<AlertKind> {
    let action = match pattern {
        PressPattern::Single => map.single,
        PressPattern::Double => map.double,
        PressPattern::LongHold => map.long_hold,
    };
    match action {
        PressAction::Ignore => None,
        PressAction::Panic => Some(AlertKind::Panic),
        PressAction::Medical => Some(AlertKind::Medical),
        PressAction::Fire => Some(AlertKind::Fire),
        PressAction::Lockdown => Some(AlertKind::Lockdown),
        PressAction::Intruder => Some(AlertKind::Intruder),
    }
}

/// The stored name of a pattern.
pub fn pattern_name(pattern: PressPattern) -> &'static str {
    match pattern {
        PressPattern::Single => "single",
        PressPattern::Double => "double",
        PressPattern::LongHold => "long_hold",
    }
}

fn parse_action(text: &str) -> Result<PressAction, PressMapError> {
    Ok(match text {
        "ignore" => PressAction::Ignore,
        "panic" => PressAction::Panic,
        "medical" => PressAction::Medical,
        "fire" => PressAction::Fire,
        "lockdown" => PressAction::Lockdown,
        "intruder" => PressAction::Intruder,
        other => return Err(PressMapError::Action(other.to_owned())),
    })
}

fn action_name(action: PressAction) -> &'static str {
    match action {
        PressAction::Ignore => "ignore",
        PressAction::Panic => "panic",
        PressAction::Medical => "medical",
        PressAction::Fire => "fire",
        PressAction::Lockdown => "lockdown",
        PressAction::Intruder => "intruder",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partial_maps_over_a_base_and_round_trips() {
        let map = parse_press_map("double = fire, long_hold=ignore", DEFAULT).unwrap();
        assert_eq!(map.single, PressAction::Panic);
        assert_eq!(map.double, PressAction::Fire);
        assert_eq!(map.long_hold, PressAction::Ignore);
        assert_eq!(
            parse_press_map(&format_press_map(&map), DEFAULT).unwrap(),
            map
        );
        assert_eq!(kind_of(&map, PressPattern::LongHold), None);
        assert_eq!(kind_of(&map, PressPattern::Double), Some(AlertKind::Fire));
    }

    #[test]
    fn a_device_map_keeps_what_it_leaves_out_following_the_gateways() {
        let device = DevicePressMap::parse("double=fire").unwrap();
        let gateway = parse_press_map("single=medical", DEFAULT).unwrap();
        let map = device.over(gateway);
        assert_eq!(map.single, PressAction::Medical);
        assert_eq!(map.double, PressAction::Fire);
        assert_eq!(map.long_hold, PressAction::Lockdown);
        assert_eq!(DevicePressMap::parse("").unwrap().over(gateway), gateway);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for (text, want) in [
            ("single", PressMapError::Syntax("single".into())),
            ("triple=panic", PressMapError::Pattern("triple".into())),
            ("single=help", PressMapError::Action("help".into())),
            (
                "single=panic,single=fire",
                PressMapError::Repeated("single".into()),
            ),
        ] {
            assert_eq!(parse_press_map(text, DEFAULT), Err(want), "{text}");
        }
    }
}
