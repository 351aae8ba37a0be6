//! `cargo xtask bench realtime`, the fan-out part: 10,000 live SSE streams on one
//! `cloud-sync serve` process (the release binary, its own database on the `DATABASE_URL`
//! server and its own data directory), and alerts synced by a gateway over mutual TLS
//! delivered to all of them.
//!
//! - **People:** 10,000 in the scope of school `north-a` (superadmins, region admins of
//!   `north`, school admins and viewers of `north-a`), one stream each, and 400 viewers of
//!   `north-b`, who must hear nothing of `north-a`. They are inserted with SQL (10,400 argon2
//!   logins would take minutes) and their access tokens are minted with the cloud's own
//!   signing key (`KeyRing::load_or_create` on its data directory), so the server verifies
//!   them exactly as tokens from a login.
//! - **Streams:** raw TCP connections from one tokio runtime in this process, each a
//!   hand-written HTTP/1.1 `GET /api/v1/realtime/events` read through a small buffer (chunked
//!   transfer decoding and SSE lines by hand), opened [`CONNECTING`] at a time.
//! - **Memory:** the cloud's `VmRSS` after a warm-up, and after every stream got its `ready`
//!   event and [`SETTLE`] passed; the difference per stream.
//! - **Delivery:** [`ALERTS`] sync batches, each raising a new alert, sent as the gateway
//!   ([`GAP`] apart); t0 is taken just before the request. Every stream stamps the read that
//!   completed the alert's event. Per alert: p50, p99, max and how many streams got it.
//!
//! Any lost stream, missing delivery or event outside a stream's scope ends the program with
//! an error and a non-zero status: the figures are printed only for a complete run. The
//! bench process shares the 2 cores with the cloud and Postgres; every latency includes the
//! time this process takes to read 10,000 sockets.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail, ensure};
use cloud_sync::auth::{self, KeyRing, Password};
use cloud_sync::db;
use common::Gateway;
use common::gateway::{key_and_csr, mtls_client, new_epoch};
use common::records::alert_event;
use shared::alert::AlertState;
use shared::ids::{AlertId, SchoolId};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Executor, PgPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use uuid::Uuid;

/// Streams that must receive every alert of `north-a`.
const IN_SCOPE: usize = 10_000;
/// Streams of `north-b`'s viewers, which must receive none of them.
const OUT_OF_SCOPE: usize = 400;
/// Streams opened and closed before the first memory reading.
const WARM_UP: usize = 100;
/// In-scope roles: (role, count); the rest of [`IN_SCOPE`] are viewers of `north-a`.
const ROLES: [(&str, usize); 3] = [
    ("superadmin", 100),
    ("region_admin", 900),
    ("school_admin", 3_000),
];
/// Streams connecting (TCP, request, up to their `ready` event) at once.
const CONNECTING: usize = 200;
/// Alerts delivered and measured.
const ALERTS: usize = 10;
/// Time between two alerts.
const GAP: Duration = Duration::from_millis(1500);
/// Idle time before the memory reading with every stream open.
const SETTLE: Duration = Duration::from_secs(5);
/// The longest one alert may take to reach every stream before the run fails.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(15);
/// The longest all streams may take to open before the run fails.
const OPEN_DEADLINE: Duration = Duration::from_secs(180);
/// The read buffer of one stream.
const READ_BUFFER: usize = 2048;

const SCHOOL: &str = "north-a";
const OTHER_SCHOOL: &str = "north-b";

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fanout: FAILED: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let url = std::env::var("DATABASE_URL")
        .context("DATABASE_URL is not set (cargo xtask bench realtime starts a server)")?;
    let admin: PgConnectOptions = url.parse().context("DATABASE_URL")?;
    let name = format!("hallwatch_fanout_{}", std::process::id());
    let server = PgPool::connect_with(admin.clone()).await?;
    server
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    let opts = admin.clone().database(&name);
    let result = measure(&opts).await;
    server
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await?;
    result
}

async fn measure(opts: &PgConnectOptions) -> Result<()> {
    common::install_crypto();
    let owner = PgPool::connect_with(opts.clone()).await?;
    cloud_sync::MIGRATOR.run(&owner).await?;
    let north = "north".parse()?;
    db::admin::create_region(&owner, &north, "North").await?;
    let school: SchoolId = SCHOOL.parse()?;
    let token =
        db::admin::create_school(&owner, &north, &school, SCHOOL, Duration::from_secs(3600))
            .await?;
    db::admin::create_school(
        &owner,
        &north,
        &OTHER_SCHOOL.parse()?,
        OTHER_SCHOOL,
        Duration::from_secs(3600),
    )
    .await?;
    let people = people(&owner).await?;

    let mut cloud = Cloud::start(opts)?;
    let result = fan_out(&mut cloud, token.as_str(), &people).await;
    if result.is_err() {
        eprintln!("fanout: the cloud's log:\n{}", cloud.log_tail());
    }
    cloud.stop();
    result
}

async fn fan_out(cloud: &mut Cloud, token: &str, people: &People) -> Result<()> {
    cloud.wait_listening().await?;
    let gateway = enroll(cloud, token).await?;
    let keys = KeyRing::load_or_create(cloud.data.path()).context("the cloud's signing key")?;
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    let mut seq = 0;
    let send_alert = async |seq: &mut u64| -> Result<(AlertId, Instant, Duration)> {
        *seq += 1;
        let alert = AlertId::new();
        let batch = gateway.alerts(vec![alert_event(*seq, alert, AlertState::Triggered)]);
        let t0 = Instant::now();
        gateway
            .send(&batch)
            .await
            .map_err(|refused| anyhow::anyhow!("sync refused: {refused:?}"))?;
        Ok((alert, t0, t0.elapsed()))
    };

    // Warm-up: the sync path, the scope lookups and the stream path, then back to idle.
    let warm: Vec<Viewer> = people.warm_up.iter().map(|&u| viewer(u, true)).collect();
    let warm_streams = open(cloud.public, &keys, &warm, &notes_tx).await?;
    wait_ready(&mut notes, warm.len(), &warm_streams).await?;
    for _ in 0..3 {
        send_alert(&mut seq).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for stream in &warm_streams {
        stream.abort();
    }
    // The server notices a closed stream when a write to it fails: the second after the
    // client left (the first only draws the client's reset).
    let mut open_before = 0;
    for _ in 0..5 {
        send_alert(&mut seq).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        open_before = cloud.sse_gauge().await?;
        if open_before == 0 {
            break;
        }
    }
    ensure!(
        open_before == 0,
        "{open_before} warm-up streams still open on the server"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    drain(&mut notes);
    let before = cloud.rss_kb()?;

    // The streams.
    let viewers: Vec<Viewer> = people
        .in_scope
        .iter()
        .map(|&u| viewer(u, true))
        .chain(people.out_of_scope.iter().map(|&u| viewer(u, false)))
        .collect();
    let started = Instant::now();
    let streams = open(cloud.public, &keys, &viewers, &notes_tx).await?;
    wait_ready(&mut notes, viewers.len(), &streams).await?;
    let opened = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let open_after = cloud.sse_gauge().await?;
    ensure!(
        open_after == viewers.len() as i64,
        "the server counts {open_after} open streams, not {}",
        viewers.len()
    );
    let idle = cloud.rss_kb()?;
    check_quiet(&mut notes)?;
    println!(
        "fanout: {} streams open in {:.1} s; cloud RSS {} kB before, {} kB with them open",
        viewers.len(),
        opened.as_secs_f64(),
        before,
        idle
    );

    // Delivery.
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    let mut maxes = Vec::new();
    let mut syncs = Vec::new();
    let mut cloud_cpu = Vec::new();
    let mut bench_cpu = Vec::new();
    for n in 1..=ALERTS {
        let cpu = (cpu_ns(cloud.child.id())?, cpu_ns(std::process::id())?);
        let (alert, t0, sync) = send_alert(&mut seq).await?;
        let mut latencies = deliveries(&mut notes, &alert.to_string(), t0).await?;
        cloud_cpu.push((cpu_ns(cloud.child.id())? - cpu.0) as f64 / 1e6);
        bench_cpu.push((cpu_ns(std::process::id())? - cpu.1) as f64 / 1e6);
        let (p50, p99, max) = (
            percentile(&mut latencies, 0.50),
            percentile(&mut latencies, 0.99),
            percentile(&mut latencies, 1.0),
        );
        println!(
            "fanout: alert {n}: {} streams, p50 {p50:.1} / p99 {p99:.1} / max {max:.1} ms; \
             sync request {:.1} ms; CPU until the last delivery: cloud {:.1} ms, bench {:.1} ms",
            latencies.len(),
            sync.as_secs_f64() * 1e3,
            cloud_cpu[n - 1],
            bench_cpu[n - 1],
        );
        p50s.push(p50);
        p99s.push(p99);
        maxes.push(max);
        syncs.push(sync.as_secs_f64() * 1e3);
        tokio::time::sleep(GAP).await;
    }
    check_quiet(&mut notes)?;
    let rss_end = cloud.rss_kb()?;
    let live = streams.iter().filter(|s| !s.is_finished()).count();
    ensure!(
        live == viewers.len(),
        "{} streams ended",
        viewers.len() - live
    );

    let rate = viewers.len() as f64 / opened.as_secs_f64();
    let per_stream = (idle as f64 - before as f64) / viewers.len() as f64;
    println!("figure fanout_streams_open_per_s {rate:.0} streams/s");
    println!("figure fanout_rss_before {:.1} MB", before as f64 / 1024.0);
    println!(
        "figure fanout_rss_idle_streams {:.1} MB",
        idle as f64 / 1024.0
    );
    println!(
        "figure fanout_rss_after_alerts {:.1} MB",
        rss_end as f64 / 1024.0
    );
    println!("figure fanout_rss_per_idle_stream {per_stream:.2} KB");
    let per_alert = [
        ("alert_p50_median", percentile(&mut p50s, 0.5)),
        ("alert_p99_median", percentile(&mut p99s, 0.5)),
        ("alert_p99_worst", percentile(&mut p99s, 1.0)),
        ("alert_max_worst", percentile(&mut maxes, 1.0)),
        ("sync_request_median", percentile(&mut syncs, 0.5)),
        ("cloud_cpu_per_alert", percentile(&mut cloud_cpu, 0.5)),
        ("bench_cpu_per_alert", percentile(&mut bench_cpu, 0.5)),
    ];
    for (name, ms) in per_alert {
        println!("figure fanout_{name} {ms:.1} ms");
    }
    println!(
        "fanout: every alert reached all {IN_SCOPE} streams in scope; the {OUT_OF_SCOPE} streams \
         of {OTHER_SCHOOL} received no event; none ended"
    );
    for stream in streams {
        stream.abort();
    }
    Ok(())
}

// === People and tokens ===

/// The users the streams belong to, one stream each.
struct People {
    in_scope: Vec<Uuid>,
    out_of_scope: Vec<Uuid>,
    warm_up: Vec<Uuid>,
}

/// Inserts the people with one statement per table (as `admin create-user` would, without
/// 10,400 argon2 hashes: they all share one, and nobody logs in).
async fn people(owner: &PgPool) -> Result<People> {
    let password = Password::try_from("fan-out bench password".to_owned())?;
    let hash = auth::hash_password(&password)?;
    let mut grants: Vec<(Uuid, &str, Option<&str>, Option<&str>)> = Vec::new();
    let mut in_scope = Vec::new();
    for (role, count) in ROLES {
        for _ in 0..count {
            let user = Uuid::now_v7();
            let (region, school) = match role {
                "superadmin" => (None, None),
                "region_admin" => (Some("north"), None),
                _ => (None, Some(SCHOOL)),
            };
            grants.push((user, role, region, school));
            in_scope.push(user);
        }
    }
    while in_scope.len() < IN_SCOPE {
        let user = Uuid::now_v7();
        grants.push((user, "viewer", None, Some(SCHOOL)));
        in_scope.push(user);
    }
    let out_of_scope: Vec<Uuid> = (0..OUT_OF_SCOPE).map(|_| Uuid::now_v7()).collect();
    let warm_up: Vec<Uuid> = (0..WARM_UP).map(|_| Uuid::now_v7()).collect();
    for &user in &out_of_scope {
        grants.push((user, "viewer", None, Some(OTHER_SCHOOL)));
    }
    for &user in &warm_up {
        grants.push((user, "viewer", None, Some(SCHOOL)));
    }
    let ids: Vec<Uuid> = grants.iter().map(|g| g.0).collect();
    let emails: Vec<String> = ids
        .iter()
        .map(|id| format!("{}@fanout.example.org", id.simple()))
        .collect();
    sqlx::query(
        "INSERT INTO users (user_id, email, password_hash) \
         SELECT u, e, $3 FROM UNNEST($1::uuid[], $2::text[]) AS t(u, e)",
    )
    .bind(&ids)
    .bind(&emails)
    .bind(hash.as_str())
    .execute(owner)
    .await?;
    sqlx::query(
        "INSERT INTO role_grants (user_id, role, region_id, school_id) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[])",
    )
    .bind(&ids)
    .bind(grants.iter().map(|g| g.1).collect::<Vec<_>>())
    .bind(grants.iter().map(|g| g.2).collect::<Vec<_>>())
    .bind(grants.iter().map(|g| g.3).collect::<Vec<_>>())
    .execute(owner)
    .await?;
    Ok(People {
        in_scope,
        out_of_scope,
        warm_up,
    })
}

#[derive(Clone, Copy)]
struct Viewer {
    user: Uuid,
    in_scope: bool,
}

fn viewer(user: Uuid, in_scope: bool) -> Viewer {
    Viewer { user, in_scope }
}

// === The cloud process ===

/// `cloud-sync serve` from the release build, on free loopback ports.
struct Cloud {
    child: Child,
    public: SocketAddr,
    sync: SocketAddr,
    metrics: SocketAddr,
    data: tempfile::TempDir,
}

impl Cloud {
    fn start(opts: &PgConnectOptions) -> Result<Cloud> {
        let data = tempfile::tempdir()?;
        let log = std::fs::File::create(data.path().join("cloud-sync.log"))?;
        let [public, sync, metrics] = [free_addr()?, free_addr()?, free_addr()?];
        let app_url = format!(
            "postgres://{}@{}:{}/{}",
            db::APP_ROLE,
            opts.get_host(),
            opts.get_port(),
            opts.get_database().context("a database name")?
        );
        let child = Command::new(env!("CARGO_BIN_EXE_cloud-sync"))
            .arg("serve")
            .args(["--database-url", &app_url])
            .arg("--data-dir")
            .arg(data.path())
            .args(["--listen", &public.to_string()])
            .args(["--sync-listen", &sync.to_string()])
            .args(["--metrics-listen", &metrics.to_string()])
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start cloud-sync serve")?;
        Ok(Cloud {
            child,
            public,
            sync,
            metrics,
            data,
        })
    }

    async fn wait_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        for addr in [self.public, self.sync, self.metrics] {
            while TcpStream::connect(addr).await.is_err() {
                if let Some(status) = self.child.try_wait()? {
                    bail!("cloud-sync serve exited ({status})");
                }
                ensure!(Instant::now() < deadline, "cloud-sync serve did not listen");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The process's resident set, in kB.
    fn rss_kb(&mut self) -> Result<u64> {
        if let Some(status) = self.child.try_wait()? {
            bail!("cloud-sync serve exited ({status})");
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/PID/status")
    }

    /// `hallwatch_cloud_sse_connections` from its metrics listener.
    async fn sse_gauge(&self) -> Result<i64> {
        let body = reqwest::get(format!("http://{}/metrics", self.metrics))
            .await?
            .text()
            .await?;
        body.lines()
            .find_map(|l| l.strip_prefix("hallwatch_cloud_sse_connections "))
            .and_then(|v| v.trim().parse().ok())
            .context("no hallwatch_cloud_sse_connections in /metrics")
    }

    fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.data.path().join("cloud-sync.log")).unwrap_or_default();
        let start = log.len().saturating_sub(4000);
        log.get(start..).unwrap_or_default().to_owned()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time of every thread of process `pid` so far, in ns (`/proc/PID/task/*/schedstat`).
fn cpu_ns(pid: u32) -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread may end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(task?.path().join("schedstat")) else {
            continue;
        };
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .context("unreadable schedstat")?;
    }
    Ok(total)
}

fn free_addr() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Enrolls a gateway of `north-a` with `token`, as `edge-agent enroll` does.
async fn enroll(cloud: &Cloud, token: &str) -> Result<Gateway> {
    let (key, csr) = key_and_csr();
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/v1/enroll", cloud.public))
        .json(&serde_json::json!({ "token": token, "csr_pem": csr }))
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "enrollment refused: {}",
        response.status()
    );
    let body: serde_json::Value = response.json().await?;
    let text = |field: &str| -> Result<String> {
        Ok(body[field]
            .as_str()
            .with_context(|| format!("no {field} in the enrollment answer"))?
            .to_owned())
    };
    let (cert_pem, ca_pem, key_pem) = (
        text("certificate_pem")?,
        text("ca_pem")?,
        key.serialize_pem(),
    );
    Ok(Gateway {
        school_id: text("school_id")?.parse()?,
        gateway_id: text("gateway_id")?.parse()?,
        client: mtls_client(&cert_pem, &key_pem, &ca_pem),
        cert_pem,
        key_pem,
        ca_pem,
        url: format!("https://localhost:{}/api/v1/sync", cloud.sync.port()),
        epoch: new_epoch(),
    })
}

// === The streams ===

/// What a stream tells the main task.
enum Note {
    Ready,
    /// An `alert` event about this alert id, completed by a read at this instant.
    Alert(String, Instant),
    /// Any other event (a `gateway` or `device` event of the school is fine in scope; out of
    /// scope, nothing may arrive).
    Other {
        in_scope: bool,
        kind: String,
    },
    /// The stream ended: why.
    Ended(String),
}

/// Opens one stream per viewer, [`CONNECTING`] at a time; tokens are minted now.
async fn open(
    addr: SocketAddr,
    keys: &KeyRing,
    viewers: &[Viewer],
    notes: &mpsc::UnboundedSender<Note>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let mut streams = Vec::with_capacity(viewers.len());
    for v in viewers {
        let (token, _) = keys.issue(v.user, SystemTime::now())?;
        let permit = Arc::clone(&connecting).acquire_owned().await?;
        let notes = notes.clone();
        let in_scope = v.in_scope;
        streams.push(tokio::spawn(async move {
            let why = match stream(addr, &token, in_scope, permit, &notes).await {
                Ok(()) => "the server ended the stream".to_owned(),
                Err(err) => format!("{err:#}"),
            };
            let _ = notes.send(Note::Ended(why));
        }));
    }
    Ok(streams)
}

/// Waits until `count` streams said `ready`; fails on any ended stream or after
/// [`OPEN_DEADLINE`].
async fn wait_ready(
    notes: &mut mpsc::UnboundedReceiver<Note>,
    count: usize,
    streams: &[tokio::task::JoinHandle<()>],
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + OPEN_DEADLINE;
    let mut ready = 0;
    while ready < count {
        match next_note(notes, deadline).await? {
            Some(Note::Ready) => ready += 1,
            Some(_) => {}
            None => bail!(
                "only {ready} of {count} streams ready after {OPEN_DEADLINE:?} ({} tasks ended)",
                streams.iter().filter(|s| s.is_finished()).count()
            ),
        }
    }
    Ok(())
}

/// The next note that is not an in-scope event of another kind, or `None` once `deadline`
/// passed. Fails on a stream that ended, on any event of an out-of-scope stream, and when
/// every stream task is gone.
async fn next_note(
    notes: &mut mpsc::UnboundedReceiver<Note>,
    deadline: tokio::time::Instant,
) -> Result<Option<Note>> {
    loop {
        match tokio::time::timeout_at(deadline, notes.recv()).await {
            Ok(Some(Note::Ended(why))) => bail!("a stream ended: {why}"),
            Ok(Some(Note::Other {
                in_scope: false,
                kind,
            })) => bail!("an out-of-scope stream received `{kind}`"),
            Ok(Some(Note::Other { in_scope: true, .. })) => {}
            Ok(Some(note)) => return Ok(Some(note)),
            Ok(None) => bail!("every stream task ended"),
            Err(_) => return Ok(None),
        }
    }
}

/// The latencies (ms after `t0`) of `alert` reaching every in-scope stream.
async fn deliveries(
    notes: &mut mpsc::UnboundedReceiver<Note>,
    alert: &str,
    t0: Instant,
) -> Result<Vec<f64>> {
    let deadline = tokio::time::Instant::now() + DELIVERY_DEADLINE;
    let mut latencies = Vec::with_capacity(IN_SCOPE);
    while latencies.len() < IN_SCOPE {
        match next_note(notes, deadline).await? {
            Some(Note::Alert(id, at)) if id == alert => {
                latencies.push(at.duration_since(t0).as_secs_f64() * 1e3);
            }
            Some(Note::Alert(id, _)) => bail!("an alert {id} arrived, expected {alert}"),
            Some(_) => {}
            None => bail!(
                "alert {alert} reached {} of {IN_SCOPE} streams within {DELIVERY_DEADLINE:?}",
                latencies.len()
            ),
        }
    }
    Ok(latencies)
}

/// Fails on any note but in-scope events of other kinds.
fn check_quiet(notes: &mut mpsc::UnboundedReceiver<Note>) -> Result<()> {
    while let Ok(note) = notes.try_recv() {
        match note {
            Note::Other { in_scope: true, .. } => {}
            Note::Other { kind, .. } => bail!("an out-of-scope stream received `{kind}`"),
            Note::Ended(why) => bail!("a stream ended: {why}"),
            Note::Ready => bail!("a stream said ready twice"),
            Note::Alert(id, _) => bail!("an unexpected alert {id} arrived"),
        }
    }
    Ok(())
}

/// Discards what the warm-up streams said.
fn drain(notes: &mut mpsc::UnboundedReceiver<Note>) {
    while notes.try_recv().is_ok() {}
}

/// One stream: the request, the response head, then events until the server ends it.
async fn stream(
    addr: SocketAddr,
    token: &str,
    in_scope: bool,
    permit: OwnedSemaphorePermit,
    notes: &mpsc::UnboundedSender<Note>,
) -> Result<()> {
    let mut permit = Some(permit);
    let mut tcp = TcpStream::connect(addr).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let request = format!(
        "GET /api/v1/realtime/events HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.context("request")?;
    let mut buf = vec![0u8; READ_BUFFER];
    let mut body = Body::default();
    loop {
        let n = tcp.read(&mut buf).await.context("read")?;
        let at = Instant::now();
        if n == 0 {
            bail!("the server closed the connection");
        }
        for event in body.feed(&buf[..n])? {
            match event.kind.as_str() {
                "ready" => {
                    drop(permit.take());
                    let _ = notes.send(Note::Ready);
                }
                "alert" => {
                    let id = alert_id(&event.data)?;
                    if !in_scope {
                        bail!("an out-of-scope stream received alert {id}");
                    }
                    let _ = notes.send(Note::Alert(id, at));
                }
                "reload" | "token_expired" => {
                    bail!("the server ended the stream: {} {}", event.kind, event.data)
                }
                _ => {
                    let _ = notes.send(Note::Other {
                        in_scope,
                        kind: event.kind,
                    });
                }
            }
        }
        if body.ended {
            return Ok(());
        }
    }
}

/// The `alert_id` of an `alert` event's data, found rather than parsed: 10,000 streams parse
/// each alert on the same 2 cores as the cloud, and the figure is the cloud's.
fn alert_id(data: &str) -> Result<String> {
    const KEY: &str = "\"alert_id\":\"";
    let start = data.find(KEY).context("an alert event without alert_id")? + KEY.len();
    let id = data
        .get(start..start + 36)
        .with_context(|| format!("a short alert_id in {data}"))?;
    Ok(id.to_owned())
}

/// One SSE event.
struct SseEvent {
    kind: String,
    data: String,
}

/// The response as it arrives: the head, then chunked transfer coding, then SSE lines.
#[derive(Default)]
struct Body {
    /// Bytes not yet consumed (part of the head, or of a chunk-size line).
    pending: Vec<u8>,
    head_done: bool,
    /// Bytes left in the current chunk; `None` while reading a size line.
    chunk_left: Option<usize>,
    /// The CRLF after a chunk's data is still to come.
    chunk_crlf: bool,
    line: Vec<u8>,
    kind: String,
    data: String,
    ended: bool,
}

impl Body {
    /// Consumes `bytes`; the events they complete.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        if !self.head_done {
            let Some(end) = find(&self.pending, b"\r\n\r\n") else {
                ensure!(self.pending.len() < 8192, "response head too long");
                return Ok(events);
            };
            let head = String::from_utf8_lossy(&self.pending[..end]).to_ascii_lowercase();
            ensure!(
                head.starts_with("http/1.1 200"),
                "refused: {}",
                String::from_utf8_lossy(&self.pending)
            );
            ensure!(
                head.contains("content-type: text/event-stream"),
                "not an event stream: {head}"
            );
            ensure!(
                head.contains("transfer-encoding: chunked"),
                "not chunked: {head}"
            );
            self.pending.drain(..end + 4);
            self.head_done = true;
        }
        // Taken out while the SSE parser (a `&mut self` method) reads from it.
        let mut pending = std::mem::take(&mut self.pending);
        let mut at = 0;
        loop {
            if self.chunk_crlf {
                if pending.len() - at < 2 {
                    break;
                }
                ensure!(&pending[at..at + 2] == b"\r\n", "bad chunk end");
                at += 2;
                self.chunk_crlf = false;
            }
            match self.chunk_left {
                None => {
                    let Some(end) = find(&pending[at..], b"\r\n") else {
                        break;
                    };
                    let line = std::str::from_utf8(&pending[at..at + end])?;
                    let size = line.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(size, 16)
                        .with_context(|| format!("bad chunk size {line:?}"))?;
                    at += end + 2;
                    if size == 0 {
                        self.ended = true;
                        break;
                    }
                    self.chunk_left = Some(size);
                }
                Some(left) => {
                    let take = left.min(pending.len() - at);
                    if take == 0 {
                        break;
                    }
                    for &byte in &pending[at..at + take] {
                        if let Some(event) = self.sse_byte(byte)? {
                            events.push(event);
                        }
                    }
                    at += take;
                    if take == left {
                        self.chunk_left = None;
                        self.chunk_crlf = true;
                    } else {
                        self.chunk_left = Some(left - take);
                    }
                }
            }
        }
        pending.drain(..at);
        ensure!(
            pending.len() < 64 * 1024,
            "a chunk-size line without its end"
        );
        self.pending = pending;
        Ok(events)
    }

    fn sse_byte(&mut self, byte: u8) -> Result<Option<SseEvent>> {
        if byte != b'\n' {
            ensure!(self.line.len() < 64 * 1024, "SSE line too long");
            self.line.push(byte);
            return Ok(None);
        }
        let line = std::str::from_utf8(&self.line)?.trim_end_matches('\r');
        let mut event = None;
        if line.is_empty() {
            if !self.kind.is_empty() {
                event = Some(SseEvent {
                    kind: std::mem::take(&mut self.kind),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.data.clear();
        } else if let Some(v) = line.strip_prefix("event:") {
            self.kind = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            self.data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
        self.line.clear();
        Ok(event)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index.min(values.len() - 1)]
}
