//! The gateway under systemd: the unit files in `systemd/` verify, and the real `edge-agent run`
//! speaks the notify protocol to a socket the test binds as systemd would (`NOTIFY_SOCKET`,
//! `WATCHDOG_USEC`): `READY=1` once it listens, `WATCHDOG=1` while the alert engine turns,
//! none while the engine is stuck, `STOPPING=1` on SIGTERM.
//!
//! `systemd-analyze` comes from Debian's `systemd` package, which `cargo xtask test` installs
//! when it is missing; the test fails, never skips, without it.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Gateway;
use common::agent::RunningAgent;
use common::button::FwDevice;
use firmware_protocol::{AckState, PressPattern};
use tokio::net::UnixDatagram;

/// Both units verify as installed: `systemd-analyze verify --root` on a throwaway root that
/// holds the system's own units (the targets ours depend on), ours where a package puts them,
/// and the binaries this build made at their `ExecStart=` paths (verify insists that they
/// exist and are executable). Warnings count as failures: verify exits 0 on an unknown key or
/// a value it cannot parse, and only says so. The offline security audit must stay at
/// systemd's "OK" (exposure at most 2.0), so weakening the hardening fails here.
#[tokio::test]
async fn the_unit_files_verify_and_stay_hardened() {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let units = root.path().join("usr/lib/systemd/system");
    copy_dir(Path::new("/usr/lib/systemd/system"), &units);
    let repo_units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    for unit in UNITS {
        std::fs::copy(repo_units.join(unit), units.join(unit)).unwrap();
    }
    let bin = root.path().join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    install_binary(
        Path::new(env!("CARGO_BIN_EXE_edge-agent")),
        &bin.join("edge-agent"),
    );
    install_binary(common::cloud::cloud_sync_bin(), &bin.join("cloud-sync"));

    let out = analyze(root.path(), &["verify"], &UNITS);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for unit in UNITS {
        let out = analyze(
            root.path(),
            &["security", "--offline=yes", "--threshold=20"],
            &[unit],
        );
        assert!(
            out.status.success(),
            "{unit} is less hardened than it was:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // The check can fail: a key systemd does not know is reported.
    let broken = std::fs::read_to_string(units.join(UNITS[0])).unwrap();
    let broken = broken.replace("[Service]\n", "[Service]\nProtectSystem=stricter\n");
    std::fs::write(units.join(UNITS[0]), broken).unwrap();
    let out = analyze(root.path(), &["verify"], &UNITS[..1]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stricter"),
        "{out:?}"
    );
}

const UNITS: [&str; 2] = ["hallwatch-edge.service", "hallwatch-cloud.service"];

fn analyze(root: &Path, command: &[&str], units: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(command)
        .arg(format!("--root={}", root.display()))
        .args(units)
        .output()
        .expect("systemd-analyze runs (Debian's `systemd` package; `cargo xtask test` installs it)")
}

/// Copies a unit directory: files, and symbolic links as links (`*.wants/` entries).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), target).unwrap();
        } else if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The build's binary at `to`: a hard link (the root is in the target directory), else a copy.
fn install_binary(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

/// `WatchdogSec=2s`: the shortest the agent supports (the engine turns every 500 ms when idle).
const WATCHDOG_USEC: &str = "2000000";

/// The systemd side of the notify protocol: a datagram socket and what arrived on it.
struct Manager {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Manager {
    fn bind(dir: &Path) -> Manager {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Manager { socket, path }
    }

    fn env(&self) -> [(&str, &str); 2] {
        [
            ("NOTIFY_SOCKET", self.path.to_str().unwrap()),
            ("WATCHDOG_USEC", WATCHDOG_USEC),
        ]
    }

    /// The next message's lines, or `None` after `wait` without one.
    async fn next(&self, wait: Duration) -> Option<Vec<String>> {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(wait, self.socket.recv(&mut buf))
            .await
            .ok()?
            .unwrap();
        let text = String::from_utf8(buf[..n].to_vec()).unwrap();
        Some(text.lines().map(str::to_owned).collect())
    }

    /// Waits for a message with `line`, skipping watchdog pings; fails after `wait`.
    async fn expect(&self, line: &str, wait: Duration, agent: &mut RunningAgent) -> Vec<String> {
        let deadline = Instant::now() + wait;
        loop {
            match self.next(Duration::from_millis(200)).await {
                Some(msg) if msg.iter().any(|l| l == line) => return msg,
                Some(msg) if msg == ["WATCHDOG=1"] => {}
                Some(msg) => panic!("expected {line}, got {msg:?}"),
                None => {
                    // Exiting without the message fails here, with the agent's log.
                    agent.assert_running();
                    assert!(
                        Instant::now() < deadline,
                        "no {line} within {wait:?}:\n{}",
                        agent.log()
                    );
                }
            }
        }
    }

    /// Counts watchdog pings over `span`; fails on any other message.
    async fn pings(&self, span: Duration) -> usize {
        let end = Instant::now() + span;
        let mut pings = 0;
        while let Some(msg) = self
            .next(end.saturating_duration_since(Instant::now()))
            .await
        {
            assert_eq!(msg, ["WATCHDOG=1"], "only pings while running");
            pings += 1;
        }
        pings
    }
}

#[tokio::test]
async fn ready_once_listening_watchdog_while_running_stopping_on_sigterm() {
    let gw = Gateway::init_local();
    let manager = Manager::bind(gw.tmp.path());
    let mut agent = gw.spawn_agent("", &manager.env());

    let ready = manager
        .expect("READY=1", Duration::from_secs(20), &mut agent)
        .await;
    // READY means listening: both listeners accept at once, with no retry.
    for addr in [agent.mqtt, agent.http] {
        tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("READY=1 before {addr} listened: {e}"));
    }
    let status = ready.iter().find(|l| l.starts_with("STATUS=")).unwrap();
    assert!(status.contains(&agent.mqtt.to_string()), "{status}");

    // Every 500 ms (a quarter of the 2 s watchdog) while the engine turns.
    let pings = manager.pings(Duration::from_secs(3)).await;
    assert!(pings >= 3, "{pings} watchdog pings in 3 s");

    let pid = agent.process.0.id().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term.success());
    let start = Instant::now();
    manager
        .expect("STOPPING=1", Duration::from_secs(10), &mut agent)
        .await;
    let exit = agent.process.0.wait().unwrap();
    let took = start.elapsed();
    assert!(exit.success(), "{exit}:\n{}", agent.log());
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
}

/// A hung engine, for real: the test holds SQLite's write lock, so the engine's next
/// transaction waits out the database's 5 s busy timeout, and then again for the retry of the
/// failed batch, about 10 s stuck inside one turn of its loop. The watchdog must go quiet
/// (under systemd, `WatchdogSec=` later the agent is killed and restarted), and resume once
/// the engine turns again.
#[tokio::test]
async fn a_stuck_engine_stops_the_watchdog_pings_until_it_turns_again() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let manager = Manager::bind(gw.tmp.path());
    let mut agent = gw.spawn_agent("", &manager.env());
    manager
        .expect("READY=1", Duration::from_secs(20), &mut agent)
        .await;
    let mut button = FwDevice::connect(agent.mqtt, &bundle, "btn-1", 1).await;
    assert!(manager.pings(Duration::from_secs(1)).await >= 1);

    let db = rusqlite::Connection::open(gw.data.join("edge.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let locked = Instant::now();
    button.press(PressPattern::Single, 1).await;

    // Pings may still arrive for up to half the watchdog after the engine got stuck; then a
    // silence of more than the whole watchdog period, while the process runs.
    let deadline = locked + Duration::from_secs(9);
    let silent = loop {
        match manager.next(Duration::from_millis(2_500)).await {
            None => break locked.elapsed(),
            Some(msg) => {
                assert_eq!(msg, ["WATCHDOG=1"]);
                assert!(
                    Instant::now() < deadline,
                    "the watchdog kept pinging while the engine was stuck:\n{}",
                    agent.log()
                );
            }
        }
    };
    agent.assert_running();
    assert!(
        agent.log().contains("withholding the watchdog ping"),
        "{}",
        agent.log()
    );

    db.execute_batch("ROLLBACK").unwrap();
    let unlocked = Instant::now();
    // The stuck turn ends within one more busy timeout; pings resume after it.
    let resumed = manager
        .next(Duration::from_secs(8))
        .await
        .unwrap_or_else(|| panic!("no ping after the lock was released:\n{}", agent.log()));
    assert_eq!(resumed, ["WATCHDOG=1"]);
    assert!(agent.log().contains("watchdog pings resume"));
    // And the engine works: the press (refused while the database was locked) is taken now.
    button.press(PressPattern::Single, 1).await;
    let ack = button.press_ack(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ack.state, AckState::Received);
    eprintln!(
        "silent {silent:?} after the lock; pings resumed {:?} after its release",
        unlocked.elapsed()
    );
}
