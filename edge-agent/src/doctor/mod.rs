//! `edge-agent doctor`: checks a gateway and explains what is wrong, each check with a
//! status (ok, warn, fail), what it found and, when not ok, a one-line fix.
//!
//! Nothing here writes or locks anything a running agent needs: the database is read on a
//! read-only connection, listeners are probed by binding (only when the agent is not
//! running) and by asking the agent's local API, the cloud by one `GET` of the sync
//! endpoint over the gateway's mutual TLS. `files.rs` checks certificates, keys and the CRL;
//! `local.rs` the database, disk and listeners; `cloud.rs` the cloud, the clock and the
//! last sync.

mod cloud;
mod files;
mod local;

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::config::Config;

/// Certificates expiring sooner than this are a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// Clock skew against the cloud above this is a warning…
pub const SKEW_WARN_S: f64 = 5.0;
/// …and above this a failure (TLS validity and alert times depend on the clock).
pub const SKEW_FAIL_S: f64 = 60.0;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked, e.g. `server certificate`.
    pub name: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it (when not ok).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub(crate) fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub(crate) fn warn(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub(crate) fn fail(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every check, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

/// `doctor` found at least one failing check (exit status 1).
#[derive(Debug, thiserror::Error)]
#[error("{0} check(s) failed")]
pub struct Failed(pub usize);

impl Report {
    /// `Err` when any check failed.
    pub fn verdict(&self) -> Result<(), Failed> {
        match self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count()
        {
            0 => Ok(()),
            n => Err(Failed(n)),
        }
    }

    /// The check named `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// One line per check, its fix indented below, and a summary.
    pub fn render(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0) + 1;
        let mut out = String::new();
        for check in &self.checks {
            let status = match check.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            let name = format!("{}:", check.name);
            let _ = writeln!(out, "{status}  {name:<width$} {}", check.detail);
            if let Some(fix) = &check.fix {
                let _ = writeln!(out, "      {:<width$} fix: {fix}", "");
            }
        }
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        let _ = writeln!(
            out,
            "{} ok, {} warnings, {} failed",
            count(Status::Ok),
            count(Status::Warn),
            count(Status::Fail)
        );
        out
    }
}

/// Runs every check on `data_dir`.
pub async fn examine(data_dir: &Path) -> Report {
    let mut checks = Vec::new();
    let config = match Config::load(data_dir) {
        Ok(config) => {
            checks.push(Check::ok(
                "configuration",
                format!("agent.toml is valid (school {})", config.school_id),
            ));
            config
        }
        Err(e) => {
            checks.push(Check::fail(
                "configuration",
                format!("{e}"),
                "fix agent.toml as the message says (or run `edge-agent setup`/`init` for a new gateway)",
            ));
            return Report { checks };
        }
    };
    checks.extend(files::check(data_dir, &config));
    let agent = local::agent(data_dir).await;
    checks.push(agent.check.clone());
    checks.push(local::database(data_dir));
    checks.push(local::disk(data_dir, &config));
    checks.extend(local::listeners(&config, agent.running));
    checks.extend(cloud::check(data_dir, &config, &agent).await);
    Report { checks }
}

/// A certificate expiry as a date and days left.
pub(crate) fn days_left(not_after_s: i64, now_s: i64) -> i64 {
    (not_after_s - now_s).div_euclid(86_400)
}

/// A certificate's time (whole seconds) as a UTC date.
pub(crate) fn date(unix_s: i64) -> shared::Utc {
    shared::UnixMillis::new(unix_s.saturating_mul(1000)).utc(shared::UtcFormat::Date)
}
