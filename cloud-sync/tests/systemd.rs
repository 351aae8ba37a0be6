//! `cloud-sync serve` under systemd's notify protocol, with a socket the test binds as systemd
//! would (`NOTIFY_SOCKET`, `WATCHDOG_USEC`): `READY=1` once both listeners accept,
//! `WATCHDOG=1` while the database answers and none while it refuses connections,
//! `STOPPING=1` on SIGTERM. The unit file itself is verified by edge-agent's `systemd` test,
//! which has both binaries.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::UnixDatagram;

/// `WatchdogSec=2s`: the test sees several pings a second.
const WATCHDOG_USEC: &str = "2000000";

struct Serve {
    child: Child,
    public: u16,
    sync: u16,
    log: std::path::PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(opts: &PgConnectOptions, dir: &Path, notify: &Path) -> Serve {
        Serve::start_in(
            Command::new(env!("CARGO_BIN_EXE_cloud-sync")),
            opts,
            dir,
            notify,
        )
    }

    /// `serve` with its soft open-file limit set to `soft` (by `prlimit`, which execs it:
    /// the child's pid is the service's), as systemd starts a service with 1,024.
    fn start_with_nofile(opts: &PgConnectOptions, dir: &Path, notify: &Path, soft: u64) -> Serve {
        let mut prlimit = Command::new("prlimit");
        prlimit
            .arg(format!("--nofile={soft}:"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_cloud-sync"));
        Serve::start_in(prlimit, opts, dir, notify)
    }

    fn start_in(mut command: Command, opts: &PgConnectOptions, dir: &Path, notify: &Path) -> Serve {
        let (public, sync) = (free_port(), free_port());
        let log = dir.join("serve.log");
        let child = command
            .args(["serve", "--database-url", &app_url(opts), "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{public}")])
            .args(["--sync-listen", &format!("127.0.0.1:{sync}")])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "cloud_sync=info")
            .env("NOTIFY_SOCKET", notify)
            .env("WATCHDOG_USEC", WATCHDOG_USEC)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Serve {
            child,
            public,
            sync,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("serve exited ({status}):\n{}", self.log());
        }
    }
}

/// The systemd side of the notify protocol.
struct Manager {
    socket: UnixDatagram,
}

impl Manager {
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
    async fn expect(&self, line: &str, wait: Duration, serve: &mut Serve) -> Vec<String> {
        let deadline = Instant::now() + wait;
        loop {
            match self.next(Duration::from_millis(200)).await {
                Some(msg) if msg.iter().any(|l| l == line) => return msg,
                Some(msg) if msg == ["WATCHDOG=1"] => {}
                Some(msg) => panic!("expected {line}, got {msg:?}"),
                None => {
                    serve.assert_running();
                    assert!(
                        Instant::now() < deadline,
                        "no {line} within {wait:?}:\n{}",
                        serve.log()
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

/// `ALTER DATABASE … ALLOW_CONNECTIONS`; `db` is the name `#[sqlx::test]` made
/// (`_sqlx_test_…`), quoted as an identifier.
async fn allow_connections(owner: &sqlx::PgPool, db: &str, allow: bool) {
    assert!(
        db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{db}"
    );
    let sql = format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS {allow}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(owner)
        .await
        .unwrap();
}

fn app_url(opts: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        cloud_sync::db::APP_ROLE,
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap()
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `serve` and waits for its `READY=1`.
async fn ready(opts: &PgConnectOptions, dir: &Path) -> (Serve, Manager) {
    ready_with(opts, dir, None).await
}

/// [`ready`], with the soft open-file limit `nofile` when given.
async fn ready_with(opts: &PgConnectOptions, dir: &Path, nofile: Option<u64>) -> (Serve, Manager) {
    let path = dir.join("notify.sock");
    let manager = Manager {
        socket: UnixDatagram::bind(&path).unwrap(),
    };
    let mut serve = match nofile {
        Some(soft) => Serve::start_with_nofile(opts, dir, &path, soft),
        None => Serve::start(opts, dir, &path),
    };
    let ready = manager
        .expect("READY=1", Duration::from_secs(30), &mut serve)
        .await;
    // READY means listening: both listeners accept at once, with no retry.
    for port in [serve.public, serve.sync] {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("READY=1 before port {port} listened: {e}"));
    }
    let status = ready.iter().find(|l| l.starts_with("STATUS=")).unwrap();
    assert!(status.contains(&serve.sync.to_string()), "{status}");
    (serve, manager)
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn serve_is_ready_once_listening_pings_the_watchdog_and_says_stopping(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let dir = tempfile::tempdir().unwrap();
    let (mut serve, manager) = ready(&opts, dir.path()).await;

    // Every 500 ms (a quarter of the 2 s watchdog) while the database answers.
    let pings = manager.pings(Duration::from_secs(3)).await;
    assert!(pings >= 3, "{pings} watchdog pings in 3 s");

    let pid = serve.child.id().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term.success());
    manager
        .expect("STOPPING=1", Duration::from_secs(15), &mut serve)
        .await;
    let exit = serve.child.wait().unwrap();
    assert!(exit.success(), "{exit}:\n{}", serve.log());
}

/// The database goes away for real: the test database stops accepting connections and the
/// service's are terminated, so its pool has nothing to give. The watchdog goes quiet (under
/// systemd, `WatchdogSec=` later the service is restarted) and pings again once the database
/// is back.
#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn the_watchdog_goes_quiet_while_the_database_refuses_connections(
    owner: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let dir = tempfile::tempdir().unwrap();
    let (mut serve, manager) = ready(&opts, dir.path()).await;
    assert!(manager.pings(Duration::from_secs(1)).await >= 1);

    // As the cluster's superuser, from its `postgres` database: a database cannot refuse
    // connections to itself.
    let db = opts.get_database().unwrap().to_owned();
    let owner = owner
        .max_connections(1)
        .connect_with(opts.clone().database("postgres"))
        .await
        .unwrap();
    allow_connections(&owner, &db, false).await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND usename = $2",
    )
    .bind(&db)
    .bind(cloud_sync::db::APP_ROLE)
    .execute(&owner)
    .await
    .unwrap();

    // A ping already on its way may still arrive; then silence for longer than the watchdog.
    let refused = Instant::now();
    loop {
        match manager.next(Duration::from_millis(2_500)).await {
            None => break,
            Some(msg) => {
                assert_eq!(msg, ["WATCHDOG=1"]);
                assert!(
                    refused.elapsed() < Duration::from_secs(5),
                    "the watchdog kept pinging without a database:\n{}",
                    serve.log()
                );
            }
        }
    }
    serve.assert_running();
    assert!(
        serve.log().contains("withholding the watchdog ping"),
        "{}",
        serve.log()
    );

    allow_connections(&owner, &db, true).await;
    let resumed = manager
        .next(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no ping after the database came back:\n{}", serve.log()));
    assert_eq!(resumed, ["WATCHDOG=1"]);
    assert!(serve.log().contains("watchdog pings resume"));
}

/// systemd starts a service with a soft limit of 1,024 open files; each live SSE stream holds
/// one, so `serve` raises its soft limit to the hard one (no `LimitNOFILE=` in the unit).
#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn serve_raises_its_open_file_limit_to_the_hard_one(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    assert!(
        hard > 1024,
        "this test needs a hard limit above 1,024 (it is {hard})"
    );
    let dir = tempfile::tempdir().unwrap();
    let (serve, _manager) = ready_with(&opts, dir.path(), Some(1024)).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", serve.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(
        numbers,
        [hard, hard],
        "soft and hard limits of serve: {line}"
    );
}
