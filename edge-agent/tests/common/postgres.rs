//! A PostgreSQL cluster of one test's own, for a test that restarts the server: the shared
//! server of `cargo xtask test` (`DATABASE_URL`) serves the other tests running at the same
//! time, so it cannot be restarted. Made as `xtask/src/postgres.rs` makes its throwaway
//! cluster: the system's binaries (`/usr/lib/postgresql/<newest>/bin`), trust on loopback,
//! run as the `postgres` user through `runuser` when we are root (initdb and postgres refuse
//! root). Stopped and deleted when dropped, also when the test fails.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

/// The server user when we are root.
const SERVER_USER: &str = "postgres";

/// A running private cluster.
pub(crate) struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<&'static str>,
    pub(crate) port: u16,
}

impl PrivatePostgres {
    /// initdb and start, on a free loopback port.
    pub(crate) fn start() -> PrivatePostgres {
        let bin = bin_dir();
        let run_as = is_root().then_some(SERVER_USER);
        let dir = tempfile::Builder::new()
            .prefix("hallwatch-pg-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("socket")).unwrap();
        if let Some(user) = run_as {
            ok(Command::new("chown").args(["-R", user]).arg(dir.path()));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePostgres {
            dir,
            bin,
            run_as,
            port,
        };
        ok(&mut pg.server_cmd("initdb", |cmd| {
            cmd.arg("-D").arg(pg.data()).args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ]);
        }));
        // As xtask's: fsync off risks data only on an operating-system crash; a killed or
        // restarted server (what the test does) loses nothing committed.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=100",
            pg.dir.path().join("socket").display()
        );
        let log = pg.log_path();
        let started = pg
            .server_cmd("pg_ctl", |cmd| {
                cmd.arg("-D").arg(pg.data()).arg("-l").arg(&log);
                cmd.args(["-w", "-t", "60", "-o", &options, "start"]);
            })
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "cannot start PostgreSQL: {}\n{}",
            String::from_utf8_lossy(&started.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A new database on this cluster, connected to as the superuser.
    pub(crate) async fn database(&self, name: &str) -> PgConnectOptions {
        let admin = PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username("postgres")
            .database("postgres");
        let mut conn = admin.connect().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        admin.database(name)
    }

    /// `pg_ctl restart -m immediate`: every backend is killed without a checkpoint and the
    /// server recovers from its WAL, as after a crash. Returns when it accepts connections.
    /// (The server keeps the options it was started with; its output must go to the log
    /// file, or it would hold this process's pipes open for ever.)
    pub(crate) fn restart_immediately(&self) -> Duration {
        let start = std::time::Instant::now();
        ok(&mut self.server_cmd("pg_ctl", |cmd| {
            cmd.arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.log_path());
            cmd.args(["-m", "immediate", "-w", "-t", "60", "restart"]);
        }));
        start.elapsed()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The server's log, for failure messages.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn server_cmd(&self, name: &str, args: impl FnOnce(&mut Command)) -> Command {
        let program = self.bin.join(name);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        args(&mut cmd);
        cmd
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = self
                .server_cmd("pg_ctl", |cmd| {
                    cmd.arg("-D")
                        .arg(self.data())
                        .args(["-m", "immediate", "-w", "stop"]);
                })
                .output();
        }
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` and `pg_ctl`.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries are installed (cargo xtask test installs them)")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .expect("initdb and pg_ctl under /usr/lib/postgresql")
        .1
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
