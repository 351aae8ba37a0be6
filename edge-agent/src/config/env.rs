//! Environment variables that override `agent.toml`: `HALLWATCH_<SECTION>_<FIELD>`, upper
//! case (`HALLWATCH_SYNC_BACKOFF_MAX_S` for `[sync] backoff_max_s`). The package's
//! `/etc/hallwatch/edge.env` sets them for the service.
//!
//! A value is parsed by the kind of its field (a whole number, text, or a comma-separated
//! list), put in place of the file's, and then validated with the rest of the file, so it
//! meets the same bounds; an error names the variable. A variable of an overridable section
//! with a field that does not exist is refused like an unknown key in the file.
//!
//! Not overridable, on purpose: `[school] id` (it is in every certificate the gateway
//! issued), `[[rooms]]` (a list of tables), and `[cloud]` (the gateway's identity at the
//! cloud, written by `edge-agent enroll` with its certificate; `HALLWATCH_CLOUD_*` is also
//! the cloud service's own prefix, so those variables are left to it).

use std::ffi::OsString;

use super::ConfigError;

/// What every variable starts with.
pub const PREFIX: &str = "HALLWATCH_";

/// The longest value a variable may have, in bytes.
pub const MAX_VALUE_BYTES: usize = 4_096;

/// How a field's value is written in a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Decimal digits, at most `max`.
    Whole { max: u64 },
    /// Any text; the field's own rules apply.
    Text,
    /// Comma-separated items, each trimmed; empty for none.
    List,
}

const fn whole(max: u64) -> Kind {
    Kind::Whole { max }
}

/// The largest integer TOML holds.
const TOML_MAX: u64 = i64::MAX as u64;

/// Every field a variable may override: `(section, field, kind)`.
pub const OVERRIDABLE: &[(&str, &str, Kind)] = &[
    ("school", "name", Kind::Text),
    ("school", "students_total", whole(u32::MAX as u64)),
    ("gateway", "hostnames", Kind::List),
    ("gateway", "ips", Kind::List),
    ("mqtt", "listen", Kind::Text),
    ("http", "listen", Kind::Text),
    ("gate", "max_connections", whole(TOML_MAX)),
    ("gate", "max_pending", whole(TOML_MAX)),
    ("gate", "max_pending_per_ip", whole(TOML_MAX)),
    ("gate", "handshake_timeout_ms", whole(TOML_MAX)),
    ("gate", "connect_timeout_ms", whole(TOML_MAX)),
    ("gate", "max_packet_bytes", whole(TOML_MAX)),
    ("gate", "device_uplinks_per_s", whole(TOML_MAX)),
    ("gate", "total_uplinks_per_s", whole(TOML_MAX)),
    ("alerts", "escalate_after_s", whole(TOML_MAX)),
    ("alerts", "cancel_window_s", whole(TOML_MAX)),
    ("alerts", "press_map", Kind::Text),
    ("health", "heartbeat_interval_s", whole(TOML_MAX)),
    ("health", "offline_after_s", whole(TOML_MAX)),
    ("health", "battery_low_mv", whole(u16::MAX as u64)),
    ("snapshots", "debounce_ms", whole(TOML_MAX)),
    ("snapshots", "heartbeat_s", whole(TOML_MAX)),
    ("snapshots", "full_s", whole(TOML_MAX)),
    ("snapshots", "stale_after_s", whole(TOML_MAX)),
    ("sync", "batch_max_records", whole(TOML_MAX)),
    ("sync", "batch_max_bytes", whole(TOML_MAX)),
    ("sync", "batch_wait_ms", whole(TOML_MAX)),
    ("sync", "heartbeat_s", whole(TOML_MAX)),
    ("sync", "request_timeout_s", whole(TOML_MAX)),
    ("sync", "backoff_min_ms", whole(TOML_MAX)),
    ("sync", "backoff_max_s", whole(TOML_MAX)),
    ("sync", "thin_after_s", whole(TOML_MAX)),
    ("sync", "thin_keep_every_s", whole(TOML_MAX)),
    ("sync", "outbox_budget_mb", whole(TOML_MAX)),
];

/// Fields no variable overrides, with the reason a refusal gives.
pub const NOT_OVERRIDABLE: &[(&str, &str)] = &[
    (
        "school.id",
        "the school id is in every certificate this gateway issued; it is set once, by \
         `edge-agent init`",
    ),
    (
        "rooms",
        "rooms are a list of tables; edit [[rooms]] in agent.toml",
    ),
    (
        "cloud",
        "the [cloud] section is the gateway's enrollment, written by `edge-agent enroll`",
    ),
];

/// One variable that applies, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The variable's name, for errors.
    pub var: String,
    /// The section, lower case.
    pub section: &'static str,
    /// The field, lower case.
    pub field: &'static str,
    /// `section.field`, as validation errors name it.
    pub path: String,
    /// The value, typed for the field.
    pub value: toml::Value,
}

/// The variable that overrides `section.field`.
pub fn var_name(path: &str) -> String {
    format!("{PREFIX}{}", path.replace('.', "_").to_ascii_uppercase())
}

/// The overrides among `vars` (the process's environment, or a test's), or the first
/// variable that is refused. Variables outside the overridable sections are left alone.
pub fn overrides(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Vec<Override>, ConfigError> {
    let mut found = Vec::new();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let refuse = |reason: String| ConfigError::Env {
            var: name.to_owned(),
            reason,
        };
        let lower = rest.to_ascii_lowercase();
        // `HALLWATCH_CLOUD_*` belongs to the cloud service; the others are refused.
        if let Some((_, why)) = NOT_OVERRIDABLE.iter().find(|(path, _)| {
            let path = path.replace('.', "_");
            path != "cloud" && (lower == path || lower.starts_with(&format!("{path}_")))
        }) {
            return Err(refuse(format!("cannot be set from the environment: {why}")));
        }
        let Some((section, field)) = lower.split_once('_') else {
            continue;
        };
        if !OVERRIDABLE.iter().any(|(s, _, _)| *s == section) {
            // Another program's variable (HALLWATCH_ENROLL_TOKEN, the cloud's
            // HALLWATCH_CLOUD_*), not agent.toml's.
            continue;
        }
        let Some(&(section, field, kind)) = OVERRIDABLE
            .iter()
            .find(|(s, f, _)| *s == section && *f == field)
        else {
            let known: Vec<String> = OVERRIDABLE
                .iter()
                .filter(|(s, _, _)| *s == section)
                .map(|(s, f, _)| var_name(&format!("{s}.{f}")))
                .collect();
            return Err(refuse(format!(
                "[{section}] has no field {field:?}; the variables for it are {}",
                known.join(", ")
            )));
        };
        let Some(value) = value.to_str() else {
            return Err(refuse("is not valid UTF-8".into()));
        };
        if value.len() > MAX_VALUE_BYTES {
            return Err(refuse(format!(
                "is {} bytes long, at most {MAX_VALUE_BYTES} are allowed",
                value.len()
            )));
        }
        let value = parse(kind, value).map_err(refuse)?;
        found.push(Override {
            var: name.to_owned(),
            section,
            field,
            path: format!("{section}.{field}"),
            value,
        });
    }
    found.sort_by(|a, b| a.var.cmp(&b.var));
    Ok(found)
}

/// The process's `HALLWATCH_*` variables.
pub fn process_vars() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(name, _)| name.to_str().is_some_and(|n| n.starts_with(PREFIX)))
        .collect()
}

/// Puts each override into the parsed file, replacing the file's value.
pub fn apply(table: &mut toml::Table, overrides: &[Override]) -> Result<(), ConfigError> {
    for o in overrides {
        let section = table
            .entry(o.section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section) = section.as_table_mut() else {
            return Err(ConfigError::Invalid {
                field: o.section,
                reason: format!("is not a table, so {} cannot override a field in it", o.var),
            });
        };
        section.insert(o.field.to_owned(), o.value.clone());
    }
    Ok(())
}

fn parse(kind: Kind, value: &str) -> Result<toml::Value, String> {
    match kind {
        Kind::Text => Ok(toml::Value::String(value.to_owned())),
        Kind::List => Ok(toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_owned()))
                .collect(),
        )),
        Kind::Whole { max } => {
            let digits = value.trim();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{value:?} is not a whole number"));
            }
            match digits.parse::<u64>() {
                Ok(n) if n <= max => Ok(toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))),
                _ => Err(format!("{digits} is above {max}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn refused_var(pairs: &[(&str, &str)]) -> (String, String) {
        match overrides(vars(pairs)).unwrap_err() {
            ConfigError::Env { var, reason } => (var, reason),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn variables_are_typed_by_their_field() {
        let found = overrides(vars(&[
            ("HALLWATCH_SYNC_BACKOFF_MAX_S", "20"),
            ("HALLWATCH_GATEWAY_IPS", " 10.0.0.2, ,10.0.0.3 "),
            ("HALLWATCH_MQTT_LISTEN", "127.0.0.1:9883"),
            ("HALLWATCH_ENROLL_TOKEN", "hwe_x"),
            ("HALLWATCH_CLOUD_URL", "https://elsewhere"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        let found: Vec<(&str, toml::Value)> = found
            .iter()
            .map(|o| (o.var.as_str(), o.value.clone()))
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    "HALLWATCH_GATEWAY_IPS",
                    toml::Value::Array(vec!["10.0.0.2".into(), "10.0.0.3".into()])
                ),
                ("HALLWATCH_MQTT_LISTEN", "127.0.0.1:9883".into()),
                ("HALLWATCH_SYNC_BACKOFF_MAX_S", toml::Value::Integer(20)),
            ]
        );
    }

    #[test]
    fn each_refusal_names_the_variable() {
        for (pairs, var, reason) in [
            (
                [("HALLWATCH_SYNC_BACKOF_MAX_S", "2")],
                "HALLWATCH_SYNC_BACKOF_MAX_S",
                "HALLWATCH_SYNC_BACKOFF_MAX_S",
            ),
            (
                [("HALLWATCH_SYNC_HEARTBEAT_S", "ten")],
                "HALLWATCH_SYNC_HEARTBEAT_S",
                "not a whole number",
            ),
            (
                [("HALLWATCH_SYNC_HEARTBEAT_S", "-1")],
                "HALLWATCH_SYNC_HEARTBEAT_S",
                "not a whole number",
            ),
            (
                [("HALLWATCH_HEALTH_BATTERY_LOW_MV", "70000")],
                "HALLWATCH_HEALTH_BATTERY_LOW_MV",
                "above 65535",
            ),
            (
                [("HALLWATCH_GATE_MAX_CONNECTIONS", "99999999999999999999")],
                "HALLWATCH_GATE_MAX_CONNECTIONS",
                "above",
            ),
            (
                [("HALLWATCH_SCHOOL_ID", "other")],
                "HALLWATCH_SCHOOL_ID",
                "every certificate",
            ),
            (
                [("HALLWATCH_ROOMS_CAPACITY", "30")],
                "HALLWATCH_ROOMS_CAPACITY",
                "[[rooms]]",
            ),
        ] {
            let (got_var, got_reason) = refused_var(&pairs);
            assert_eq!(got_var, var);
            assert!(got_reason.contains(reason), "{var}: {got_reason}");
        }
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        let (var, reason) = refused_var(&[("HALLWATCH_SCHOOL_NAME", &long)]);
        assert_eq!(var, "HALLWATCH_SCHOOL_NAME");
        assert!(reason.contains("at most 4096"), "{reason}");
    }

    #[test]
    fn non_utf8_values_are_refused() {
        use std::os::unix::ffi::OsStringExt;
        let err = overrides(vec![(
            OsString::from("HALLWATCH_SCHOOL_NAME"),
            OsString::from_vec(vec![0xff, 0xfe]),
        )])
        .unwrap_err();
        assert!(err.to_string().contains("HALLWATCH_SCHOOL_NAME"), "{err}");
    }
}
