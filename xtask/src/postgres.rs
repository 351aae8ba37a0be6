//! A PostgreSQL server for the tests: `DATABASE_URL` when it is set, otherwise a throwaway
//! cluster under `target/xtask-pg/<pid>/` made from the system's PostgreSQL binaries and
//! stopped (and deleted) when the [`Postgres`] value is dropped, also when tests fail.
//!
//! initdb and postgres refuse to run as root, so as root the cluster belongs to the `postgres`
//! system user and every server command runs through `runuser`.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::system;

/// A reachable PostgreSQL server; `url` connects as a superuser (tests create databases).
#[derive(Debug)]
pub(crate) struct Postgres {
    pub(crate) url: String,
    cluster: Option<Cluster>,
}

#[derive(Debug)]
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    run_as: Option<&'static str>,
}

const SERVER_USER: &str = "postgres";

impl Postgres {
    /// Uses `DATABASE_URL` if set, otherwise starts a throwaway cluster.
    pub(crate) fn ensure() -> Result<Postgres> {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            eprintln!("xtask: using the PostgreSQL server from DATABASE_URL");
            if let Some(bin) = find_bin_dir() {
                system::run(Command::new(bin.join("pg_isready")).args(["-d", &url]))
                    .context("DATABASE_URL is set but its server is not reachable")?;
            }
            return Ok(Postgres { url, cluster: None });
        }
        Self::throwaway()
    }

    /// Starts a throwaway cluster, whatever `DATABASE_URL` says (the demo never touches a
    /// database it did not make).
    pub(crate) fn throwaway() -> Result<Postgres> {
        let bin = match find_bin_dir() {
            Some(bin) => bin,
            None => {
                install_server()?;
                find_bin_dir()
                    .context("PostgreSQL installed but no initdb under /usr/lib/postgresql")?
            }
        };
        let run_as = if system::is_root() {
            Some(SERVER_USER)
        } else {
            None
        };
        if run_as.is_some() {
            ensure_server_user()?;
        }
        let dir = cluster_dir(run_as)?;
        let cluster = Cluster { bin, dir, run_as };
        let url = cluster.start()?;
        Ok(Postgres {
            url,
            cluster: Some(cluster),
        })
    }

    /// Stops the cluster if this process started one. Dropping does the same.
    pub(crate) fn stop(mut self) {
        if let Some(cluster) = self.cluster.take() {
            cluster.stop();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            cluster.stop();
        }
    }
}

// === impl Cluster ===

impl Cluster {
    fn start(&self) -> Result<String> {
        let data = self.dir.join("data");
        let socket = self.dir.join("socket");
        fs::create_dir_all(&socket)?;
        self.chown(&self.dir)?;
        let mut initdb = self.server_cmd("initdb", |cmd| {
            cmd.arg("-D").arg(&data).args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ]);
        });
        system::output(&mut initdb).context("initdb failed")?;

        let port = free_port()?;
        // Test-only settings: fsync off only risks data on an operating-system crash, which a
        // throwaway cluster does not care about; process kills (which the tests do) are safe.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=300",
            socket.display()
        );
        let log = self.dir.join("postgres.log");
        let mut start = self.server_cmd("pg_ctl", |cmd| {
            cmd.arg("-D").arg(&data).arg("-l").arg(&log);
            cmd.args(["-w", "-t", "60", "-o", &options, "start"]);
        });
        if let Err(err) = system::output(&mut start) {
            let log = fs::read_to_string(&log).unwrap_or_default();
            bail!("cannot start PostgreSQL: {err:#}\n--- postgres.log ---\n{log}");
        }
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let psql = self.bin.join("psql");
        if psql.exists() {
            let version = system::output(Command::new(psql).args([
                "-X",
                "-A",
                "-t",
                "-d",
                &url,
                "-c",
                "select version()",
            ]))?;
            eprintln!(
                "xtask: throwaway PostgreSQL on 127.0.0.1:{port}: {}",
                version.trim()
            );
        }
        Ok(url)
    }

    fn stop(&self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            let mut stop = self.server_cmd("pg_ctl", |cmd| {
                cmd.arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]);
            });
            if let Err(err) = system::output(&mut stop) {
                eprintln!("xtask: could not stop the throwaway PostgreSQL: {err:#}");
                return;
            }
        }
        if let Err(err) = fs::remove_dir_all(&self.dir) {
            eprintln!("xtask: could not remove {}: {err}", self.dir.display());
        } else {
            eprintln!("xtask: throwaway PostgreSQL stopped and removed");
        }
    }

    /// A command for one of the server binaries, run as the server user when we are root.
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

    fn chown(&self, path: &Path) -> Result<()> {
        match self.run_as {
            Some(user) => system::run(Command::new("chown").args(["-R", user]).arg(path)),
            None => Ok(()),
        }
    }
}

// === finding and installing the server ===

/// A client program of the installed PostgreSQL (`psql`, `pg_isready`, …).
pub(crate) fn client(name: &str) -> Option<PathBuf> {
    find_bin_dir()
        .map(|bin| bin.join(name))
        .filter(|p| p.exists())
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb` and `pg_ctl`.
fn find_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn install_server() -> Result<()> {
    eprintln!("xtask: no PostgreSQL server binaries found; installing Debian's `postgresql`");
    // Debian's package would otherwise create and start a `main` cluster we do not use.
    if system::is_root() {
        let conf = Path::new("/etc/postgresql-common/createcluster.d");
        if fs::create_dir_all(conf).is_ok() {
            let _ = fs::write(
                conf.join("hallwatch-xtask.conf"),
                "create_main_cluster = false\n",
            );
        }
    }
    system::apt_install(&["postgresql"])
}

fn ensure_server_user() -> Result<()> {
    if system::succeeds(Command::new("id").arg(SERVER_USER)) {
        return Ok(());
    }
    system::run(Command::new("useradd").args([
        "--system",
        "--home-dir",
        "/var/lib/postgresql",
        "--shell",
        "/usr/sbin/nologin",
        SERVER_USER,
    ]))
}

/// `target/xtask-pg/<pid>`, after removing clusters left behind by dead xtask processes. As
/// root, falls back to the temp directory when the server user cannot reach `target/`
/// (e.g. a checkout under /root).
fn cluster_dir(run_as: Option<&str>) -> Result<PathBuf> {
    let base = system::target_dir().join("xtask-pg");
    fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    let base = match run_as {
        Some(user) if !reachable_by(user, &base) => {
            let fallback = std::env::temp_dir().join("hallwatch-xtask-pg");
            eprintln!(
                "xtask: {user} cannot reach {}; using {} for the cluster",
                base.display(),
                fallback.display()
            );
            fs::create_dir_all(&fallback)?;
            fallback
        }
        _ => base,
    };
    remove_abandoned(&base);
    Ok(base.join(std::process::id().to_string()))
}

fn reachable_by(user: &str, dir: &Path) -> bool {
    system::succeeds(
        Command::new("runuser")
            .args(["-u", user, "--", "test", "-x"])
            .arg(dir),
    )
}

/// Clusters whose xtask process is gone were interrupted hard: stop and delete them.
fn remove_abandoned(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if xtask_alive(pid) {
            continue;
        }
        let data = entry.path().join("data");
        if let Ok(pid_file) = fs::read_to_string(data.join("postmaster.pid")) {
            let server_pid = pid_file.lines().next().unwrap_or_default().trim();
            let comm = fs::read_to_string(format!("/proc/{server_pid}/comm")).unwrap_or_default();
            // Only a live `postgres` of that dead run is stopped, never a process that reused
            // the pid. Its data is throwaway.
            if comm.trim() == "postgres" {
                let _ = Command::new("kill").args(["-TERM", server_pid]).status();
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        }
        eprintln!(
            "xtask: removing abandoned cluster {}",
            entry.path().display()
        );
        let _ = fs::remove_dir_all(entry.path());
    }
}

/// True when `pid` is a live (not zombie) xtask process.
fn xtask_alive(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // stat is `pid (comm) state ...`; comm may contain spaces, so split at the last ')'.
    match stat.rsplit_once(')') {
        Some((head, tail)) => head.ends_with("(xtask") && !tail.trim_start().starts_with('Z'),
        None => false,
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}
