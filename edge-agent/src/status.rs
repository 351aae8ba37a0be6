//! `edge-agent status`: the sync status of a gateway, asked of the running agent over its
//! local API, or read from the outbox when the agent is not running (then the link state is
//! unknown and said to be).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use shared::UnixMillis;

use crate::config::Config;
use crate::install::OPERATOR_TOKEN_FILE;
use crate::store::{DB_FILE, Reader};
use crate::sync::{LinkState, SyncStatus};
use crate::view::SyncView;

/// How long `status` waits for the running agent before reading the database itself.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the status came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusSource {
    /// The running agent answered at this address.
    Agent(SocketAddr),
    /// The agent did not answer (why); the figures are the outbox's, the link is unknown.
    Database { why: String },
}

/// The gateway's sync status.
#[derive(Debug, Clone)]
pub struct LocalStatus {
    pub source: StatusSource,
    pub view: SyncView,
}

/// Asks the agent running on `data_dir`, else reads its database.
pub async fn local_status(data_dir: &Path) -> anyhow::Result<LocalStatus> {
    let config = Config::load(data_dir)?;
    let addr = loopback(config.http_listen);
    match ask_agent(data_dir, addr).await {
        Ok(view) => Ok(LocalStatus {
            source: StatusSource::Agent(addr),
            view,
        }),
        Err(why) => {
            let db = data_dir.join(DB_FILE);
            let reader = Reader::open(&db)?;
            let backlog = reader.outbox_backlog()?;
            let dead_letters = reader.dead_letter_count()?;
            let pressure = reader.last_storage_pressure()?;
            let state = if config.cloud.is_some() {
                LinkState::Connecting
            } else {
                LinkState::NotEnrolled
            };
            let report = SyncStatus::new(state, None).report();
            let mut view =
                SyncView::new(&report, &backlog, dead_letters, pressure, UnixMillis::now());
            if config.cloud.is_some() {
                "unknown".clone_into(&mut view.link);
            }
            Ok(LocalStatus {
                source: StatusSource::Database {
                    why: format!("{why:#}"),
                },
                view,
            })
        }
    }
}

/// The address to reach a listener bound to `addr` from this machine.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

async fn ask_agent(data_dir: &Path, addr: SocketAddr) -> anyhow::Result<SyncView> {
    let token_path = data_dir.join(OPERATOR_TOKEN_FILE);
    let token = std::fs::read_to_string(&token_path)
        .with_context(|| format!("cannot read {}", token_path.display()))?;
    let client = crate::cloud_http::local_client(ASK_TIMEOUT)?;
    let url = url::Url::parse(&format!("http://{addr}/api/v1/sync"))?;
    let response = match client.get(url).bearer(token.trim()).send().await {
        Ok(response) => response,
        Err(e) if e.is_connect() => anyhow::bail!("nothing answers on {addr}"),
        Err(e) => anyhow::bail!("the agent on {addr} did not answer: {e}"),
    };
    anyhow::ensure!(
        response.status().is_success(),
        "the agent on {addr} answered {}",
        response.status()
    );
    let bytes = response.read_all().await?;
    serde_json::from_slice(&bytes).context("the agent's answer is not a sync status")
}

/// The status for people, as of `now`.
pub fn render(status: &LocalStatus, now: UnixMillis) -> String {
    let v = &status.view;
    let ago = |at: i64| human_age(now.get().saturating_sub(at));
    let mut out = String::new();
    let mut line = |label: &str, value: String| out.push_str(&format!("{label:<16}{value}\n"));
    match &status.source {
        StatusSource::Agent(addr) => line("Agent:", format!("running (local API on {addr})")),
        StatusSource::Database { why } => line(
            "Agent:",
            format!("not running ({why}); the figures below are the database's"),
        ),
    }
    let link = match (&status.source, v.link.as_str(), v.last_success_at) {
        (StatusSource::Database { .. }, state, _) => format!("{state} (the agent is not running)"),
        (_, state, Some(at)) => format!("{state}, last sync {} ago", ago(at)),
        (_, state, None) => format!("{state}, no sync since the agent started"),
    };
    line("Cloud link:", link);
    if let Some(error) = &v.last_error {
        line(
            "Last error:",
            format!("{} ago: {}", ago(error.at), error.message),
        );
    }
    for lane in &v.lanes {
        let waiting = match (lane.backlog, lane.oldest_at) {
            (0, _) => "nothing waiting".to_owned(),
            (n, Some(at)) => format!(
                "{} waiting ({}), oldest from {} ago",
                records(n),
                size(lane.backlog_bytes),
                ago(at)
            ),
            (n, None) => format!("{} waiting", records(n)),
        };
        line(&format!("{} lane:", capitalised(&lane.lane)), waiting);
    }
    line("Dead letters:", v.dead_letters.to_string());
    if let Some(at) = v.last_storage_pressure_at {
        line(
            "Storage:",
            format!(
                "the outbox outgrew its budget {} ago; the oldest telemetry was dropped",
                ago(at)
            ),
        );
    }
    out
}

fn records(n: u64) -> String {
    if n == 1 {
        "1 record".to_owned()
    } else {
        format!("{n} records")
    }
}

/// `512 B`, `3 KiB`, `12 MiB`.
fn size(bytes: u64) -> String {
    match bytes {
        0..1_024 => format!("{bytes} B"),
        1_024..1_048_576 => format!("{} KiB", bytes.div_ceil(1_024)),
        _ => format!("{} MiB", bytes.div_ceil(1_048_576)),
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// `42 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`.
fn human_age(ms: i64) -> String {
    let s = ms.max(0) / 1_000;
    match s {
        0..60 => format!("{s} s"),
        60..3_600 => format!("{} min {} s", s / 60, s % 60),
        3_600..86_400 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3_600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{LaneView, SyncErrorView};

    #[test]
    fn the_report_says_what_waits_how_old_it_is_and_what_went_wrong() {
        let now = UnixMillis::new(10_000_000);
        let status = LocalStatus {
            source: StatusSource::Agent("127.0.0.1:8080".parse().unwrap()),
            view: SyncView {
                link: "down".into(),
                epoch: Some("00000000000000ff".into()),
                last_success_at: Some(now.get() - 125_000),
                last_attempt_at: Some(now.get() - 1_000),
                failures: 4,
                last_error: Some(SyncErrorView {
                    at: now.get() - 1_000,
                    message: "connection refused".into(),
                }),
                lanes: vec![
                    LaneView {
                        lane: "alert".into(),
                        backlog: 0,
                        backlog_bytes: 0,
                        oldest_at: None,
                        oldest_age_s: None,
                    },
                    LaneView {
                        lane: "telemetry".into(),
                        backlog: 12,
                        backlog_bytes: 3_000,
                        oldest_at: Some(now.get() - 7_500_000),
                        oldest_age_s: Some(7_500),
                    },
                ],
                dead_letters: 1,
                last_storage_pressure_at: None,
            },
        };
        let text = render(&status, now);
        assert_eq!(
            text,
            "Agent:          running (local API on 127.0.0.1:8080)\n\
             Cloud link:     down, last sync 2 min 5 s ago\n\
             Last error:     1 s ago: connection refused\n\
             Alert lane:     nothing waiting\n\
             Telemetry lane: 12 records waiting (3 KiB), oldest from 2 h 5 min ago\n\
             Dead letters:   1\n"
        );
    }
}
