//! `cargo xtask bench realtime` (API part): the REST API under an open-loop mixed load of
//! 1,000 requests/s, as region, school and platform dashboards drive it.
//!
//! - **The cloud** is the release `cloud-sync serve` as its own process, as an operator runs
//!   it (default settings: a pool of 16), on a throwaway database of the server
//!   `DATABASE_URL` names (xtask starts one) and a throwaway data directory.
//! - **The estate** ([`estate`]): 2 regions, 20 schools, each with 48 rooms, 50 devices, 24
//!   alerts over the last day (a quarter still open, the rest acknowledged and resolved), a
//!   note on each, a snapshot a minute for a day (28,800 in all), ~1,000 people. Put in
//!   through the real paths: enrollment and mTLS sync, the CLI and the API.
//! - **The callers**: three sessions each of a superadmin, region admins, school admins and
//!   viewers, signed in through `POST /api/v1/auth/login`.
//! - **The load** ([`load`], [`mix`]): 5 s of warm-up, then 30 s measured, at 1,000 requests/s,
//!   85 % reads and 15 % writes. Every answer must have the status its request expects
//!   (200, 201, 202, 204, or 409 for resolving a closed alert); any other — a fast 500
//!   included — fails the benchmark after the report.
//!
//! Figures: the achieved rate, read and write p50/p95/p99 in ms (from each request's due
//! time), the cloud's CPU (% of one core) and RSS; plain lines give each endpoint's
//! percentiles and the machine's CPU use. This process shares the 2 cores with the cloud
//! and Postgres.

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "api_load/estate.rs"]
mod estate;
#[path = "api_load/load.rs"]
mod load;
#[path = "api_load/mix.rs"]
mod mix;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions, Executor};

const RATE: u32 = 1_000;
const WARMUP: Duration = Duration::from_secs(5);
const MEASURE: Duration = Duration::from_secs(30);

fn main() {
    common::install_crypto();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let failed = runtime.block_on(run());
    if failed > 0 {
        eprintln!("api_load: {failed} requests got an unexpected status (see above)");
        std::process::exit(1);
    }
}

/// Runs the whole benchmark; the number of unexpected answers.
async fn run() -> usize {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (cargo xtask bench starts one)");
    let admin: PgConnectOptions = url.parse().unwrap();
    let name = format!("hallwatch_api_load_{}", std::process::id());
    let server = PgPool::connect_with(admin.clone()).await.unwrap();
    server
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let opts = admin.clone().database(&name);
    let failed = measure(&opts).await;
    server
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
    failed
}

async fn measure(opts: &PgConnectOptions) -> usize {
    let owner = PgPool::connect_with(opts.clone()).await.unwrap();
    cloud_sync::MIGRATOR.run(&owner).await.unwrap();
    let owner_url = opts.to_url_lossy().to_string();
    let app_url = opts
        .clone()
        .username(cloud_sync::db::APP_ROLE)
        .to_url_lossy()
        .to_string();
    let cloud = Cloud::start(&app_url);
    cloud.wait_listening().await;
    let api = estate::Api {
        base: format!("http://127.0.0.1:{}", cloud.public),
        http: reqwest::Client::new(),
    };
    let sync_url = format!("https://localhost:{}/api/v1/sync", cloud.sync);
    let started = Instant::now();
    let estate = estate::build(Cloud::BIN, &owner, &owner_url, &api, &sync_url).await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT relname::text, n_live_tup FROM pg_stat_user_tables \
         WHERE relname IN ('alerts', 'alert_events', 'alert_notes', 'devices', 'users', \
           'audit_log', 'rooms') OR relname LIKE 'snapshots%' ORDER BY relname",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    println!(
        "api_load: estate of {} schools and {} sessions built in {:.1} s; rows: {rows:?}",
        estate.schools.len(),
        estate.sessions.len(),
        started.elapsed().as_secs_f64()
    );

    // The Postgres server's processes: its postmaster (from the data directory's
    // postmaster.pid) and that one's children, the backends among them.
    let data_directory: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(&owner)
        .await
        .unwrap();
    let postmaster: u32 = std::fs::read_to_string(format!("{data_directory}/postmaster.pid"))
        .ok()
        .and_then(|pid| pid.lines().next().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);

    println!(
        "api_load: cloud RSS before the load {:.1} MB",
        cloud.rss_kb() as f64 / 1024.0
    );
    let mut mix = mix::Mix::new(estate, 0x5EED_0002);
    let cpu_before = (cloud.cpu_ticks(), machine_ticks(), self_ticks());
    let pg_before = family_ticks(postmaster);
    let (outcomes, measured_from) = load::run(&api.base, &mut mix, RATE, WARMUP, MEASURE).await;
    let cpu_after = (cloud.cpu_ticks(), machine_ticks(), self_ticks());
    let pg_after = family_ticks(postmaster);
    let rss = cloud.rss_kb();
    let failed = report(&outcomes, measured_from);

    let seconds = (WARMUP + MEASURE).as_secs_f64();
    let ticks = ticks_per_second();
    let cloud_cpu = (cpu_after.0 - cpu_before.0) as f64 / ticks / seconds * 100.0;
    let own_cpu = (cpu_after.2 - cpu_before.2) as f64 / ticks / seconds * 100.0;
    let (busy, total) = (
        cpu_after.1.0 - cpu_before.1.0,
        cpu_after.1.1 - cpu_before.1.1,
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let machine = busy as f64 / total.max(1) as f64 * cores * 100.0;
    // Backends that ended during the load took their ticks with them: a lower bound.
    let pg_cpu = pg_after.saturating_sub(pg_before) as f64 / ticks / seconds * 100.0;
    println!(
        "api_load: CPU over the load, % of one core: cloud {cloud_cpu:.0}, Postgres {pg_cpu:.0}, \
         load generator {own_cpu:.0}, everything else (other work on the machine) {:.0}, \
         machine {machine:.0} of {:.0}; load average {}",
        machine - cloud_cpu - own_cpu - pg_cpu,
        cores * 100.0,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("figure api_cloud_cpu {cloud_cpu:.0} %");
    println!("figure api_postgres_cpu {pg_cpu:.0} %");
    println!("figure api_cloud_rss {:.1} MB", rss as f64 / 1024.0);
    drop(cloud);
    owner.close().await;
    failed
}

/// Prints the figures and the per-endpoint lines; the number of unexpected answers.
fn report(outcomes: &[load::Outcome], measured_from: Instant) -> usize {
    let measured: Vec<&load::Outcome> = outcomes.iter().filter(|o| o.measured).collect();
    let last = measured.iter().map(|o| o.done).max().unwrap();
    let span = last.saturating_duration_since(measured_from).as_secs_f64();
    println!(
        "figure api_achieved_rate {:.0} req/s",
        measured.len() as f64 / span
    );
    for (label, write) in [("reads", false), ("writes", true)] {
        let mut ms: Vec<f64> = measured
            .iter()
            .filter(|o| o.write == write)
            .map(|o| o.latency_ms)
            .collect();
        for p in [50, 95, 99] {
            println!(
                "figure api_{label}_p{p} {:.2} ms",
                percentile(&mut ms, f64::from(p) / 100.0)
            );
        }
    }
    let mut by_endpoint: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for o in &measured {
        by_endpoint
            .entry(o.endpoint)
            .or_default()
            .push(o.latency_ms);
    }
    for (endpoint, mut ms) in by_endpoint {
        println!(
            "api_load: {endpoint:<18} n={:<6} p50 {:>7.2}  p95 {:>7.2}  p99 {:>7.2}  max {:>8.2} ms",
            ms.len(),
            percentile(&mut ms, 0.50),
            percentile(&mut ms, 0.95),
            percentile(&mut ms, 0.99),
            percentile(&mut ms, 1.0),
        );
    }
    // Unexpected answers count over the warm-up too: a wrong answer is wrong at any time.
    let mut unexpected: BTreeMap<(&str, u16, u16), (usize, String)> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.status != o.expect) {
        let entry = unexpected
            .entry((o.endpoint, o.expect, o.status))
            .or_insert_with(|| (0, o.detail.clone().unwrap_or_default()));
        entry.0 += 1;
    }
    let failed = unexpected.values().map(|v| v.0).sum();
    println!("figure api_unexpected_status {failed} requests");
    for ((endpoint, expect, status), (count, detail)) in &unexpected {
        println!(
            "api_load: UNEXPECTED {endpoint}: {count} × {status} (expected {expect}), e.g. {detail}"
        );
    }
    failed
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index.min(values.len() - 1)]
}

/// `cloud-sync serve` from this release build, as its own process.
struct Cloud {
    child: Child,
    public: u16,
    sync: u16,
    _data: tempfile::TempDir,
}

impl Cloud {
    const BIN: &'static str = env!("CARGO_BIN_EXE_cloud-sync");

    fn start(app_url: &str) -> Cloud {
        let data = tempfile::tempdir().unwrap();
        let (public, sync, metrics) = (
            common::free_port(),
            common::free_port(),
            common::free_port(),
        );
        // The log goes to a file: nobody reads a pipe during the load.
        let log = std::fs::File::create(data.path().join("cloud-sync.log")).unwrap();
        let child = Command::new(Self::BIN)
            .arg("serve")
            .args(["--database-url", app_url])
            .arg("--data-dir")
            .arg(data.path())
            .args(["--listen", &format!("127.0.0.1:{public}")])
            .args(["--sync-listen", &format!("127.0.0.1:{sync}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Cloud {
            child,
            public,
            sync,
            _data: data,
        }
    }

    async fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [self.public, self.sync] {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                assert!(
                    Instant::now() < deadline,
                    "cloud-sync serve did not listen: {}",
                    std::fs::read_to_string(self._data.path().join("cloud-sync.log"))
                        .unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// User + system time of the process and its threads, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        proc_ticks(&format!("/proc/{}/stat", self.child.id()))
    }

    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a `/proc/PID/stat`.
fn proc_ticks(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// utime + stime of `parent` and its living children (0 when `parent` is 0).
fn family_ticks(parent: u32) -> u64 {
    if parent == 0 {
        return 0;
    }
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid: u32 = fields[1].parse().unwrap_or(0);
        if pid == parent || ppid == parent {
            ticks +=
                fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        }
    }
    ticks
}

fn self_ticks() -> u64 {
    proc_ticks("/proc/self/stat")
}

/// Busy and total ticks of all CPUs, from `/proc/stat`.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let idle = cpu[3] + cpu.get(4).copied().unwrap_or(0);
    let total: u64 = cpu.iter().take(8).sum();
    (total - idle, total)
}

/// The kernel's clock ticks per second (`USER_HZ`, 100 on Linux everywhere that matters).
fn ticks_per_second() -> f64 {
    100.0
}
