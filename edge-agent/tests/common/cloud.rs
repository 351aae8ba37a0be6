//! A real cloud for the gateway's tests: the `cloud-sync` binary, migrated, administered and
//! served as an operator runs it, on a fresh database from `#[sqlx::test]` (which needs
//! `DATABASE_URL`; `cargo xtask test` sets it, `cargo xtask postgres` prints one).
//!
//! Finding the binary: `env!("CARGO_BIN_EXE_cloud-sync")` exists only in cloud-sync's own
//! tests. Under nextest (how `cargo xtask test` runs), the build lock is free while tests run,
//! so [`cloud_sync_bin`] asks cargo to build `-p cloud-sync` (a no-op when it is up to date,
//! so it is never stale) and takes the binary's path from cargo's JSON messages. Under
//! `cargo test`, cargo holds the build directory's lock while tests run and a nested build
//! would wait for ever; there the binary is taken from the directory the test executable was
//! built into, where `cargo test --workspace` has just built it.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool};

/// The `cloud-sync` binary, up to date (see the module's documentation).
pub(crate) fn cloud_sync_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if std::env::var_os("NEXTEST_RUN_ID").is_some() {
            build_with_cargo()
        } else {
            built_beside_this_test()
        }
    })
}

fn build_with_cargo() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut cargo = Command::new(env!("CARGO"));
    // The variables cargo sets for this test (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, ...) are
    // not the developer's environment: build scripts that watch them (ring's does) would see
    // a change and rebuild half the tree on every run.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || name == "CARGO_PRIMARY_PACKAGE"
            || name == "CARGO_TARGET_TMPDIR"
        {
            cargo.env_remove(name.as_ref());
        }
    }
    let out = cargo
        .args(["build", "--package", "cloud-sync", "--bin", "cloud-sync"])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(workspace.join("Cargo.toml"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo build -p cloud-sync failed");
    out.stdout
        .as_slice()
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "cloud-sync")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the cloud-sync executable")
}

fn built_beside_this_test() -> PathBuf {
    // This test is PROFILE_DIR/deps/enroll-HASH; binaries are in PROFILE_DIR.
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("cloud-sync");
    assert!(
        bin.is_file(),
        "{} is missing: run these tests with `cargo nextest run` (which builds it), or \
         `cargo build -p cloud-sync` first",
        bin.display()
    );
    bin
}

/// `cloud-sync serve` on free loopback ports, with region `north`.
pub(crate) struct TestCloud {
    child: Option<Child>,
    owner_url: String,
    app_url: String,
    owner: PgPool,
    pub(crate) public: u16,
    pub(crate) sync: u16,
    /// Its metrics listener (`/metrics`, `/healthz`, `/readyz`).
    pub(crate) metrics: u16,
    pub(crate) data: tempfile::TempDir,
}

impl TestCloud {
    /// Migrates the test database, creates region `north` and starts serving.
    pub(crate) async fn start(opts: &PgConnectOptions) -> TestCloud {
        let owner_url = url(opts, opts.get_username());
        admin(&["migrate", "--database-url", &owner_url]);
        admin(&[
            "admin",
            "create-region",
            "--database-url",
            &owner_url,
            "--id",
            "north",
            "--name",
            "North",
        ]);
        let owner = PgPool::connect_with(opts.clone()).await.unwrap();
        let data = tempfile::tempdir().unwrap();
        let (public, sync, metrics) = (free_port(), free_port(), free_port());
        let mut cloud = TestCloud {
            child: None,
            owner_url,
            app_url: url(opts, "hallwatch_app"),
            owner,
            public,
            sync,
            metrics,
            data,
        };
        cloud.spawn();
        cloud.wait_listening().await;
        cloud
    }

    /// `cloud-sync serve` on this cloud's ports, database and data directory. Its log goes
    /// to a file, not a pipe: nobody reads a pipe while a test runs, and a full one would
    /// stall the service at its next log line.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(cloud_sync_bin())
            .arg("serve")
            .args(["--database-url", &self.app_url])
            .arg("--data-dir")
            .arg(self.data.path())
            .args(["--listen", &format!("127.0.0.1:{}", self.public)])
            .args(["--sync-listen", &format!("127.0.0.1:{}", self.sync)])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", self.metrics)])
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.data.path().join("cloud-sync.log")
    }

    /// The service's log so far, for failure messages.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `kill -9` of the service: no shutdown, whatever it was doing is cut off.
    pub(crate) fn kill(&mut self) {
        let mut child = self.child.take().expect("the cloud is running");
        child.kill().unwrap();
        let _ = child.wait();
    }

    /// Starts the service again after [`TestCloud::kill`], on the same ports and with the same
    /// data directory (so its gateway CA, which the gateways trust, is the same).
    pub(crate) async fn restart(&mut self) {
        assert!(self.child.is_none(), "the cloud is still running");
        self.spawn();
        self.wait_listening().await;
    }

    /// The sync listener's address.
    pub(crate) fn sync_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.sync))
    }

    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [self.public, self.sync] {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                let child = self.child.as_mut().unwrap();
                if let Some(status) = child.try_wait().unwrap() {
                    self.child = None;
                    panic!("cloud-sync serve exited ({status}): {}", self.log());
                }
                assert!(Instant::now() < deadline, "cloud-sync serve did not listen");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The public listener, as an installer gives it to `enroll`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.public)
    }

    /// The sync listener (its certificate names `localhost` and `127.0.0.1`).
    pub(crate) fn sync_url(&self) -> String {
        format!("https://localhost:{}", self.sync)
    }

    /// The cloud's gateway CA, as the cloud keeps it.
    pub(crate) fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.data.path().join("gateway-ca.pem")).unwrap()
    }

    /// `admin create-school` in region `north`; the token it prints.
    pub(crate) fn school(&self, id: &str) -> String {
        token(&admin(&[
            "admin",
            "create-school",
            "--database-url",
            &self.owner_url,
            "--region",
            "north",
            "--id",
            id,
            "--name",
            id,
        ]))
    }

    /// `admin create-user` with `password` on stdin: `role` with its scope flags (`--region
    /// north`, `--school ID`, or none for a superadmin). Returns the new user's id.
    pub(crate) fn create_user(
        &self,
        email: &str,
        password: &str,
        role: &str,
        scope: &[&str],
    ) -> String {
        use std::io::Write;
        let mut child = Command::new(cloud_sync_bin())
            .args(["admin", "create-user", "--database-url", &self.owner_url])
            .args(["--email", email, "--password-stdin", "--role", role])
            .args(scope)
            .env_remove("DATABASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "cloud-sync admin create-user {email} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `admin create-token` for an existing school; the token it prints.
    pub(crate) fn token(&self, school: &str) -> String {
        token(&admin(&[
            "admin",
            "create-token",
            "--database-url",
            &self.owner_url,
            "--school",
            school,
        ]))
    }

    /// Makes every unused token of `school` expire now (the CLI's shortest life is an hour).
    pub(crate) async fn expire_tokens(&self, school: &str) {
        let mut tx = self.owner.begin().await.unwrap();
        sqlx::query("SELECT set_config('hallwatch.all_schools', 'on', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE enrollment_tokens SET expires_at = now() - interval '1 minute' \
             WHERE school_id = $1 AND used_at IS NULL",
        )
        .bind(school)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    /// A new gateway enrolled in `school` that syncs briskly: a heartbeat every second when
    /// idle, backoff from 50 ms to 1 s (tests wait for sync, not for politeness).
    pub(crate) fn enrolled_gateway(&self, school: &str) -> super::Gateway {
        let gw = super::Gateway::init_local();
        self.enroll(&gw, school);
        gw.set("sync", "heartbeat_s", "1");
        gw.set("sync", "backoff_min_ms", "50");
        gw.set("sync", "backoff_max_s", "1");
        gw
    }

    /// `edge-agent enroll` of `gw` with a token for `school` (created here); panics on failure.
    pub(crate) fn enroll(&self, gw: &super::Gateway, school: &str) {
        let token = self.school(school);
        let out = super::run(&[
            "enroll",
            "--data-dir",
            super::s(&gw.data),
            "--cloud",
            &self.url(),
            "--sync-url",
            &self.sync_url(),
            "--token",
            &token,
        ]);
        assert!(
            out.status.success(),
            "enroll failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `sql` as the owner with every school in scope and returns its rows.
    pub(crate) async fn rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let mut tx = self.owner.begin().await.unwrap();
        sqlx::query("SELECT set_config('hallwatch.all_schools', 'on', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        rows
    }

    /// Polls `sql` until `done` holds for its rows (at most `wait`); the last rows either way.
    pub(crate) async fn wait_for<T>(
        &self,
        sql: &str,
        wait: Duration,
        done: impl Fn(&[T]) -> bool,
    ) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let deadline = Instant::now() + wait;
        loop {
            let rows = self.rows(sql).await;
            if done(&rows) || Instant::now() > deadline {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `sql` as the owner with every school in scope.
    pub(crate) async fn execute(&self, sql: &str) {
        let mut tx = self.owner.begin().await.unwrap();
        sqlx::query("SELECT set_config('hallwatch.all_schools', 'on', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    /// The gateways the cloud knows, `(school, gateway)`, in enrollment order.
    pub(crate) async fn gateways(&self) -> Vec<(String, String)> {
        let mut tx = self.owner.begin().await.unwrap();
        sqlx::query("SELECT set_config('hallwatch.all_schools', 'on', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query_as("SELECT school_id, gateway_id FROM gateways ORDER BY enrolled_at")
            .fetch_all(&mut *tx)
            .await
            .unwrap()
    }

    /// Stops the service with SIGTERM and waits, so its connections are closed before
    /// `#[sqlx::test]` drops the database.
    pub(crate) async fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.wait();
        self.owner.close().await;
    }
}

impl Drop for TestCloud {
    fn drop(&mut self) {
        // A test that failed before `stop`.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn url(opts: &PgConnectOptions, user: &str) -> String {
    format!(
        "postgres://{user}@{}:{}/{}",
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap()
    )
}

fn admin(args: &[&str]) -> Output {
    let out = Command::new(cloud_sync_bin())
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cloud-sync {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn token(out: &Output) -> String {
    let token = String::from_utf8(out.stdout.clone()).unwrap();
    let token = token.trim();
    assert!(token.starts_with("hwe_"), "{token}");
    token.to_owned()
}

/// A loopback port nothing listens on (a moment ago).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
