//! The cloud as this gateway reaches it: the sync listener over mutual TLS, the clock
//! against the cloud's `Date`, and when the gateway last synced.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::local::Agent;
use super::{Check, SKEW_FAIL_S, SKEW_WARN_S};
use crate::config::Config;
use crate::status::StatusSource;
use crate::sync::{Probe, SyncClient};

/// A last sync older than this is a warning (the agent checks in every `heartbeat_s`).
const STALE_SYNC: Duration = Duration::from_secs(300);

/// Reachability, clock and last sync.
pub(super) async fn check(dir: &Path, config: &Config, agent: &Agent) -> Vec<Check> {
    let Some(cloud) = &config.cloud else {
        let why = "not enrolled";
        let fix = "enroll the gateway: `edge-agent enroll` (or `edge-agent setup`)";
        return vec![
            Check::warn("cloud", why, fix),
            Check::warn(
                "clock",
                format!("cannot compare with the cloud: {why}"),
                fix,
            ),
            Check::warn("last sync", why, fix),
        ];
    };
    let mut checks = Vec::new();
    let probe = match SyncClient::new(dir, &cloud.sync_url, &cloud.gateway_id, &config.sync) {
        Ok(client) => client.probe().await,
        Err(e) => Err(e.to_string()),
    };
    match &probe {
        Ok(p)
            if p.status.is_client_error()
                && p.status.as_u16() != 401
                && p.status.as_u16() != 403 =>
        {
            checks.push(Check::ok(
                "cloud",
                format!(
                    "{} reachable, this gateway's certificate accepted ({} ms)",
                    cloud.sync_url,
                    p.received
                        .duration_since(p.sent)
                        .unwrap_or_default()
                        .as_millis()
                ),
            ));
        }
        Ok(p) => checks.push(Check::fail(
            "cloud",
            format!("{} answered {}", cloud.sync_url, p.status),
            "ask the cloud's operator whether this gateway is still enrolled; if not, \
             `edge-agent enroll --force` with a new token",
        )),
        Err(e) => checks.push(Check::fail(
            "cloud",
            format!("{} cannot be reached: {e}", cloud.sync_url),
            "check the network, DNS and firewall towards the cloud (outbound HTTPS to the sync \
             port); the gateway keeps working and syncs when it can",
        )),
    }
    checks.push(clock(probe.as_ref().ok()));
    checks.push(last_sync(agent));
    checks
}

/// The local clock against the cloud's `Date` (one-second resolution, so the answer's
/// midpoint is compared and half a second of rounding forgiven).
fn clock(probe: Option<&Probe>) -> Check {
    const NAME: &str = "clock";
    let fix = "turn on time synchronisation: `sudo timedatectl set-ntp true`";
    let Some(probe) = probe else {
        return Check::warn(
            NAME,
            "cannot compare with the cloud: it cannot be reached",
            "see the cloud check",
        );
    };
    let Some(date) = probe
        .date
        .as_deref()
        .and_then(|d| httpdate::parse_http_date(d).ok())
    else {
        return Check::warn(
            NAME,
            "the cloud's answer carries no Date",
            "see the cloud check",
        );
    };
    let half = probe
        .received
        .duration_since(probe.sent)
        .unwrap_or_default()
        / 2;
    let local = probe.sent + half;
    let skew = signed_seconds(local, date + Duration::from_millis(500));
    let detail = if skew >= 0.0 {
        format!("{skew:.1} s ahead of the cloud")
    } else {
        format!("{:.1} s behind the cloud", -skew)
    };
    if skew.abs() > SKEW_FAIL_S {
        Check::fail(NAME, detail, fix)
    } else if skew.abs() > SKEW_WARN_S {
        Check::warn(NAME, detail, fix)
    } else {
        Check::ok(NAME, detail)
    }
}

fn signed_seconds(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// When the running agent last synced; without one, how long records have waited.
fn last_sync(agent: &Agent) -> Check {
    const NAME: &str = "last sync";
    let now = shared::UnixMillis::now().get();
    let Some(status) = &agent.status else {
        return Check::warn(NAME, "unknown: no status", "see the agent check");
    };
    let oldest = status
        .view
        .lanes
        .iter()
        .filter_map(|l| l.oldest_at)
        .min()
        .map(|at| format!("; records waiting since {} s ago", (now - at) / 1000))
        .unwrap_or_else(|| "; nothing waiting".into());
    match (&status.source, status.view.last_success_at) {
        (StatusSource::Agent(_), Some(at))
            if u128::try_from(now - at).unwrap_or(0) <= STALE_SYNC.as_millis() =>
        {
            Check::ok(NAME, format!("{} s ago{oldest}", (now - at) / 1000))
        }
        (StatusSource::Agent(_), Some(at)) => Check::warn(
            NAME,
            format!("{} s ago{oldest}", (now - at) / 1000),
            "see the cloud check and `edge-agent status` for the last error",
        ),
        (StatusSource::Agent(_), None) => Check::warn(
            NAME,
            format!("none since the agent started{oldest}"),
            "see the cloud check and `edge-agent status` for the last error",
        ),
        (StatusSource::Database { .. }, _) => Check::warn(
            NAME,
            format!("unknown while the agent is not running{oldest}"),
            "start the agent",
        ),
    }
}
