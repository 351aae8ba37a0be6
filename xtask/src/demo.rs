//! `cargo xtask demo`: the whole system on this machine. Builds both binaries, starts a
//! throwaway PostgreSQL, the cloud, and two enrolled school gateways of one region with
//! simulated buttons and cameras; creates a superadmin, a region admin and a school admin;
//! prints where to look and with which passwords; a simulated button is pressed now and then.
//! Ctrl-C stops everything (and deletes the cluster). Everything lives under
//! `target/demo/` and is made afresh at every run.
//!
//! `--check` is the demo's own test (run by `cargo xtask test`): the same start, then it
//! waits until a simulated press has reached the cloud's database and stops.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::postgres::Postgres;
use crate::{INTERRUPTED, system};

/// `cargo xtask demo` flags.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Ports used: BASE+80 (cloud, dashboard), BASE+443 (cloud sync), BASE+464 (cloud
    /// metrics), BASE+883.. (gateways' device listeners), BASE+81.. (gateways' dashboards).
    #[arg(long, default_value_t = 18_000, value_parser = clap::value_parser!(u16).range(1024..=64_000))]
    pub(crate) port_base: u16,
    /// Start everything, wait until a simulated press reaches the cloud, then stop (a test).
    #[arg(long)]
    pub(crate) check: bool,
}

/// The demo's people: (role, e-mail, password, extra `create-user` flags).
const PEOPLE: [(&str, &str, &str, &[&str]); 3] = [
    (
        "superadmin",
        "ops@demo.hallwatch.example",
        "demo-superadmin-pass",
        &[],
    ),
    (
        "region_admin",
        "north@demo.hallwatch.example",
        "demo-region-pass",
        &["--region", "north"],
    ),
    (
        "school_admin",
        "head@lincoln.demo.hallwatch.example",
        "demo-school-pass",
        &["--school", "lincoln-high"],
    ),
];

/// The demo's schools: (id, name).
const SCHOOLS: [(&str, &str); 2] = [
    ("lincoln-high", "Lincoln High School"),
    ("oak-primary", "Oak Primary School"),
];

/// Children stopped (SIGINT, then SIGKILL after 5 s) when dropped.
struct Processes(Vec<(String, Child)>);

impl Processes {
    fn spawn(&mut self, name: &str, cmd: &mut Command, log: &Path) -> Result<()> {
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = cmd
            .stdout(file.try_clone()?)
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        self.0.push((name.to_owned(), child));
        Ok(())
    }

    /// The first child that exited, with its status.
    fn exited(&mut self) -> Option<String> {
        self.0.iter_mut().find_map(|(name, child)| {
            child
                .try_wait()
                .ok()
                .flatten()
                .map(|status| format!("{name} exited ({status})"))
        })
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        // Newest first: simulators, then gateways, then the cloud.
        for (_, child) in self.0.iter().rev() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, child) in self.0.iter_mut().rev() {
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn run(args: &DemoArgs) -> Result<()> {
    system::run(system::cargo().args(["build", "-p", "cloud-sync", "-p", "edge-agent"]))?;
    let bin = system::target_dir().join("debug");
    let cloud_sync = bin.join("cloud-sync");
    let edge_agent = bin.join("edge-agent");
    let dir = system::target_dir().join("demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;

    // Its own cluster, whatever DATABASE_URL says: the demo never touches a real database.
    let postgres = Postgres::throwaway()?;
    let owner = postgres.url.clone();
    let app = owner.replacen("postgres://postgres@", "postgres://hallwatch_app@", 1);
    let base = args.port_base;
    let public = format!("127.0.0.1:{}", base + 80);
    let sync = format!("127.0.0.1:{}", base + 443);
    let metrics = format!("127.0.0.1:{}", base + 464);

    // The cloud: schema, a region, two schools, three people.
    system::run(Command::new(&cloud_sync).args(["migrate", "--database-url", &owner]))?;
    let admin = |args: &[&str]| -> Result<String> {
        let mut cmd = Command::new(&cloud_sync);
        cmd.arg("admin").args(args).args(["--database-url", &owner]);
        system::output(&mut cmd)
    };
    admin(&["create-region", "--id", "north", "--name", "North district"])?;
    let mut tokens = Vec::new();
    for (id, name) in SCHOOLS {
        let out = admin(&[
            "create-school",
            "--region",
            "north",
            "--id",
            id,
            "--name",
            name,
        ])?;
        let token = out
            .split_whitespace()
            .find(|w| w.starts_with("hwe_"))
            .with_context(|| format!("create-school printed no token: {out}"))?
            .to_owned();
        tokens.push(token);
    }
    for (role, email, password, extra) in PEOPLE {
        let mut cmd = Command::new(&cloud_sync);
        cmd.args([
            "admin",
            "create-user",
            "--database-url",
            &owner,
            "--email",
            email,
        ])
        .args(["--password-stdin", "--role", role])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("cannot run create-user")?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            writeln!(stdin, "{password}")?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "create-user {email} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    let mut processes = Processes(Vec::new());
    processes.spawn(
        "cloud-sync",
        Command::new(&cloud_sync)
            .args(["serve", "--database-url", &app])
            .arg("--data-dir")
            .arg(dir.join("cloud"))
            .args([
                "--listen",
                &public,
                "--sync-listen",
                &sync,
                "--sync-name",
                "localhost",
                "--metrics-listen",
                &metrics,
            ])
            .env("RUST_LOG", "info"),
        &dir.join("cloud.log"),
    )?;
    wait_for_port(&public, &mut processes)?;

    // The gateways: init, enroll, run, and simulated devices on each.
    let mut gateways = Vec::new();
    for (i, ((id, name), token)) in SCHOOLS.iter().zip(&tokens).enumerate() {
        let offset = u16::try_from(i).unwrap_or(0);
        let data = dir.join(id);
        let mqtt = format!("127.0.0.1:{}", base + 883 + offset);
        let http = format!("127.0.0.1:{}", base + 81 + offset);
        system::output(
            Command::new(&edge_agent)
                .arg("init")
                .arg("--data-dir")
                .arg(&data)
                .args(["--school-id", id, "--school-name", name])
                .args(["--mqtt-listen", &mqtt, "--http-listen", &http]),
        )?;
        system::output(
            Command::new(&edge_agent)
                .arg("enroll")
                .arg("--data-dir")
                .arg(&data)
                .args(["--cloud", &format!("http://{public}")])
                .args(["--sync-url", &format!("https://localhost:{}", base + 443)])
                .env("HALLWATCH_ENROLL_TOKEN", token),
        )?;
        processes.spawn(
            &format!("edge-agent ({id})"),
            Command::new(&edge_agent)
                .arg("run")
                .arg("--data-dir")
                .arg(&data)
                .env("RUST_LOG", "info"),
            &dir.join(format!("{id}.log")),
        )?;
        wait_for_port(&mqtt, &mut processes)?;
        processes.spawn(
            &format!("simulated devices ({id})"),
            Command::new(&edge_agent)
                .arg("simulate")
                .arg("--data-dir")
                .arg(&data)
                .args(["--buttons", "4", "--cameras", "2"])
                // A press every 30 s or so per school; sooner when checking.
                .args(["--press-rate", if args.check { "1" } else { "0.033" }]),
            &dir.join(format!("{id}-devices.log")),
        )?;
        let operator = std::fs::read_to_string(data.join("operator-token"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        gateways.push((*id, http, operator));
    }

    if args.check {
        return check(&postgres, &mut processes);
    }

    println!();
    println!("Hallwatch demo is running (logs in {}).", dir.display());
    println!();
    println!("Cloud dashboard:  http://{public}/");
    for (role, email, password, _) in PEOPLE {
        println!("  {role:<13} {email:<38} password: {password}");
    }
    println!();
    println!("Cloud metrics:    http://{metrics}/metrics");
    println!();
    println!("Gateways (front-office dashboards, work without the cloud):");
    for (id, http, operator) in &gateways {
        println!("  {id:<13} http://{http}/   operator token: {operator}");
    }
    println!();
    println!("Simulated buttons press now and then; Ctrl-C stops everything.");
    while !INTERRUPTED.load(Ordering::SeqCst) {
        if let Some(exited) = processes.exited() {
            bail!("{exited}; see the logs in {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("xtask: stopping the demo");
    drop(processes);
    postgres.stop();
    Ok(())
}

/// Waits until a simulated press is an alert in the cloud's database (2 minutes at most).
fn check(postgres: &Postgres, processes: &mut Processes) -> Result<()> {
    let psql = crate::postgres::client("psql").context("psql not found")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(exited) = processes.exited() {
            bail!("{exited}");
        }
        let count = system::output(
            Command::new(&psql)
                .args(["-At", "-d", &postgres.url, "-c"])
                .arg("SELECT count(DISTINCT school_id) FROM alerts"),
        )?;
        if count.trim() == "2" {
            eprintln!("xtask: demo check passed: presses at both schools reached the cloud");
            return Ok(());
        }
        if Instant::now() > deadline || INTERRUPTED.load(Ordering::SeqCst) {
            bail!(
                "no press reached the cloud from both schools within 2 minutes (alerts at {} schools)",
                count.trim()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until something listens on `addr` (30 s at most), failing early if a child exits.
fn wait_for_port(addr: &str, processes: &mut Processes) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if let Some(exited) = processes.exited() {
            bail!("{exited} before listening on {addr}");
        }
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after 30 s (is the port taken? try --port-base)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
