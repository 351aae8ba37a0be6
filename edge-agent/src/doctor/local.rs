//! The gateway on this machine: is its agent running, is its database sound, is there disk
//! for the outbox, and are its listeners' ports its own.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use super::Check;
use crate::config::Config;
use crate::status::{LocalStatus, StatusSource};
use crate::store::{DB_FILE, Reader};

/// Below this much free space the database cannot be trusted to grow.
const DISK_FAIL_BYTES: u64 = 64 * 1024 * 1024;

/// Whether this gateway's agent runs, as found by asking it.
#[derive(Debug, Clone)]
pub(super) struct Agent {
    pub(super) running: bool,
    pub(super) status: Option<LocalStatus>,
    pub(super) check: Check,
}

/// Asks the agent's local API (with this directory's operator token, so only this
/// gateway's agent answers yes).
pub(super) async fn agent(dir: &Path) -> Agent {
    const NAME: &str = "agent";
    match crate::status::local_status(dir).await {
        Ok(status) => match &status.source {
            StatusSource::Agent(addr) => Agent {
                running: true,
                check: Check::ok(NAME, format!("running (local API on {addr})")),
                status: Some(status),
            },
            StatusSource::Database { why } => Agent {
                running: false,
                check: Check::warn(
                    NAME,
                    format!("not running ({why})"),
                    "start it: `sudo systemctl start hallwatch-edge` (its log: `journalctl -u hallwatch-edge`)",
                ),
                status: Some(status),
            },
        },
        Err(e) => Agent {
            running: false,
            check: Check::warn(
                NAME,
                format!("not running, and its status cannot be read: {e:#}"),
                "see the database check below",
            ),
            status: None,
        },
    }
}

/// `PRAGMA integrity_check` on a read-only connection.
pub(super) fn database(dir: &Path) -> Check {
    const NAME: &str = "database";
    let path = dir.join(DB_FILE);
    let fix = "stop the agent and restore the last backup (`edge-agent restore --force`)";
    let result = Reader::open(&path).and_then(|reader| reader.integrity_check());
    match result {
        Ok(rows) if rows == ["ok"] => Check::ok(NAME, format!("{DB_FILE} integrity check: ok")),
        Ok(rows) => Check::fail(
            NAME,
            format!("{DB_FILE} failed its integrity check: {}", rows.join("; ")),
            fix,
        ),
        Err(e) => Check::fail(NAME, format!("{}: {e}", path.display()), fix),
    }
}

/// Free space on the data directory's file system against the outbox's disk budget.
pub(super) fn disk(dir: &Path, config: &Config) -> Check {
    const NAME: &str = "disk space";
    let budget = config.sync.outbox_budget_bytes;
    let used = Reader::open(&dir.join(DB_FILE))
        .and_then(|r| r.outbox_bytes())
        .unwrap_or(0);
    let free = match rustix::fs::statvfs(dir) {
        Ok(st) => st.f_bavail.saturating_mul(st.f_frsize),
        Err(e) => {
            return Check::fail(
                NAME,
                format!("cannot read the file system of {}: {e}", dir.display()),
                "check that the data directory exists and is readable",
            );
        }
    };
    let detail = format!(
        "{} free; outbox {} of its {} budget",
        mib(free),
        mib(used),
        mib(budget)
    );
    if free < DISK_FAIL_BYTES {
        Check::fail(
            NAME,
            detail,
            "free disk space now: the gateway stops recording presses when the disk is full",
        )
    } else if free < budget.saturating_sub(used) {
        Check::warn(
            NAME,
            detail,
            "free space, or lower [sync] outbox_budget_mb so the outbox cannot fill the disk",
        )
    } else {
        Check::ok(NAME, detail)
    }
}

/// The device and dashboard ports: bound by the running agent, or free for it.
pub(super) fn listeners(config: &Config, running: bool) -> Vec<Check> {
    [
        ("device listener", config.mqtt_listen, "[mqtt] listen"),
        ("dashboard listener", config.http_listen, "[http] listen"),
    ]
    .into_iter()
    .map(|(name, addr, field)| port(name, addr, field, running))
    .collect()
}

fn port(name: &'static str, addr: SocketAddr, field: &str, running: bool) -> Check {
    if running {
        // The agent binds both listeners before it serves anything, so an agent that
        // answers holds them.
        return Check::ok(name, format!("{addr}: bound by the running agent"));
    }
    match TcpListener::bind(addr) {
        Ok(listener) => {
            drop(listener);
            Check::ok(name, format!("{addr}: free for the agent"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Check::fail(
            name,
            format!("{addr}: taken by another process (this gateway's agent is not running)"),
            format!(
                "find it with `ss -ltnp 'sport = :{}'` and stop it, or change {field} in agent.toml",
                addr.port()
            ),
        ),
        Err(e) => Check::fail(
            name,
            format!("{addr}: cannot be bound: {e}"),
            format!("change {field} in agent.toml to an address of this machine"),
        ),
    }
}

fn mib(bytes: u64) -> String {
    if bytes >= 10 * 1024 * 1024 * 1024 {
        format!("{} GiB", bytes / (1024 * 1024 * 1024))
    } else if bytes >= 1024 * 1024 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}
