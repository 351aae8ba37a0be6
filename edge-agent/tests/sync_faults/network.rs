//! The network between the gateway and the cloud fails in every way a network does.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{ROOM, SETTLE, alert_cursor, cloud_presses, connect_all, gateway, press, resolve_open};
use crate::common::Gateway;
use crate::common::agent::RunningAgent;
use crate::common::button::FwDevice;
use crate::common::cloud::TestCloud;
use crate::common::delivery::{Foreign, gateway_id, open_read_only, settled};
use crate::common::proxy::{Fault, FaultProxy, Stats};

/// Alert records the cloud has merged that the gateway still holds in its outbox, waiting
/// for an ack it never got: the cloud's cursor for the epoch of the oldest waiting record,
/// against that record's seq.
async fn committed_not_acked(cloud: &TestCloud, gw: &Gateway, gateway: &str) -> i64 {
    let oldest: Option<(i64, i64)> = open_read_only(&gw.data)
        .query_row(
            "SELECT epoch, seq FROM outbox WHERE lane = 'alert' ORDER BY seq LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok();
    let Some((epoch, seq)) = oldest else {
        return 0;
    };
    let rows: Vec<(i64,)> = cloud
        .rows(&format!(
            "SELECT last_seq FROM sync_cursors \
             WHERE gateway_id = '{gateway}' AND lane = 'alert' AND epoch = {epoch}"
        ))
        .await;
    rows.first().map_or(0, |r| (r.0 - seq + 1).max(0))
}

/// What one fault did while it lasted.
#[derive(Debug)]
struct PhaseReport {
    fault: Fault,
    stats: Stats,
    /// Alert records the cloud merged during the phase.
    merged: i64,
    /// Whether `GET /api/v1/sync` said the link was down, with an error from this phase.
    saw_down: bool,
    last_error: String,
    /// At the end of the phase: alert records the cloud has, the gateway still waits for.
    committed_not_acked: i64,
}

/// Applies each fault of `plan` for its time, watching the gateway's status and the cloud.
async fn run_plan(
    proxy: &FaultProxy,
    cloud: &TestCloud,
    gw: &Gateway,
    agent: &RunningAgent,
    plan: &[(Fault, Duration)],
) -> Vec<PhaseReport> {
    let gateway = gateway_id(gw);
    let mut reports = Vec::new();
    for &(fault, length) in plan {
        let before = proxy.stats();
        let merged_before = alert_cursor(cloud, &gateway).await;
        proxy.set(fault);
        let since = shared::UnixMillis::now().get();
        let end = Instant::now() + length;
        let (mut saw_down, mut last_error) = (false, String::new());
        while Instant::now() < end {
            let (_, status) = agent.get("/api/v1/sync").await;
            let error = &status["last_error"];
            if status["link"] == "down" && error["at"].as_i64().is_some_and(|at| at >= since) {
                saw_down = true;
                last_error = error["message"].as_str().unwrap_or("").to_owned();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        reports.push(PhaseReport {
            fault,
            stats: proxy.stats() - before,
            merged: alert_cursor(cloud, &gateway).await - merged_before,
            saw_down,
            last_error,
            committed_not_acked: committed_not_acked(cloud, gw, &gateway).await,
        });
    }
    proxy.set(Fault::PassThrough);
    reports
}

/// Presses `presses` times over `length` (the buttons in turn; every fifth press of a
/// button, its alert is resolved from the dashboard), with heartbeats and counts between;
/// returns the slowest `PressAck`.
async fn press_through(
    agent: &RunningAgent,
    devices: &mut [FwDevice],
    presses: u32,
    length: Duration,
) -> (Duration, usize) {
    let (camera, buttons) = devices.split_last_mut().unwrap();
    let every = length / presses;
    let mut slowest = Duration::ZERO;
    let mut resolved = 0;
    let mut seqs = vec![0u32; buttons.len()];
    for i in 0..presses {
        let tick = Instant::now() + every;
        let b = i as usize % buttons.len();
        seqs[b] += 1;
        slowest = slowest.max(press(&mut buttons[b], seqs[b]).await);
        if seqs[b] % 5 == 0 {
            resolved += resolve_open(agent).await;
        }
        for button in buttons.iter_mut() {
            button.heartbeat(3_900).await;
        }
        camera.count(ROOM, u16::try_from(i % 25).unwrap(), 1).await;
        tokio::time::sleep_until(tick.into()).await;
    }
    (slowest, resolved)
}

/// A fault-injecting proxy between the gateway and the cloud cycles through latency, a
/// dropped link, a black hole, answers cut off after the cloud committed, and resets, while
/// buttons press and a camera counts; once the link is back everything the gateway wrote is
/// in Postgres once, in order, with no gaps — and every press was acknowledged locally
/// throughout.
#[sqlx::test(migrations = false)]
async fn through_drops_blackholes_cut_answers_latency_and_resets_every_record_arrives_once(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let started = Instant::now();
    let cloud = TestCloud::start(&opts).await;
    let proxy = FaultProxy::start(cloud.sync_addr()).await;
    let (gw, specs) = gateway(&cloud, 3, true);
    gw.set("cloud", "sync_url", &format!("\"{}\"", proxy.sync_url()));
    // Long enough for a request over a fresh connection under 2 s latency each way (TLS
    // handshake and request: four crossings); a black-holed request waits this long.
    gw.set("sync", "request_timeout_s", "10");
    let agent = gw.run_agent("").await;
    let mut devices = connect_all(&agent, &specs, 1).await;

    let plan = [
        (Fault::Latency, Duration::from_secs(10)),
        (Fault::Drop, Duration::from_secs(4)),
        (Fault::CutResponse, Duration::from_secs(5)),
        // A black-holed request waits for its timeout; the resets after it end the wait.
        (Fault::Blackhole, Duration::from_secs(5)),
        (Fault::Reset, Duration::from_secs(4)),
    ];
    let length: Duration = plan.iter().map(|p| p.1).sum();
    let presses = 30;
    let ((slowest, resolved), phases) = tokio::join!(
        press_through(&agent, &mut devices, presses, length),
        run_plan(&proxy, &cloud, &gw, &agent, &plan),
    );
    let back = Instant::now();
    let delivery = settled(&cloud, &gw, SETTLE, Foreign::Refused).await;
    let caught_up = back.elapsed();

    println!(
        "fault          accepted dropped blackholed cut delayed reset merged down committed-not-acked"
    );
    for p in &phases {
        let s = p.stats;
        println!(
            "{:<14} {:>8} {:>7} {:>10} {:>3} {:>7} {:>5} {:>6} {:>4} {:>18}  {}",
            format!("{:?}", p.fault),
            s.accepted,
            s.dropped,
            s.blackholed,
            s.cut,
            s.delayed,
            s.reset,
            p.merged,
            p.saw_down,
            p.committed_not_acked,
            p.last_error
        );
    }
    println!(
        "{presses} presses (slowest PressAck {slowest:?}), {resolved} resolves; caught up \
         {caught_up:?} after the link came back; {delivery:?}; {:?} in all",
        started.elapsed()
    );

    // Each fault did what it says to the gateway's traffic.
    let phase = |fault| phases.iter().find(|p| p.fault == fault).unwrap();
    let latency = phase(Fault::Latency);
    assert!(latency.stats.delayed > 0, "{latency:?}");
    assert!(
        latency.merged > 0,
        "a slow link still delivers: {latency:?}"
    );
    let dropped = phase(Fault::Drop);
    assert!(dropped.saw_down, "{dropped:?}");
    let blackhole = phase(Fault::Blackhole);
    assert!(blackhole.stats.blackholed > 0, "{blackhole:?}");
    let cut = phase(Fault::CutResponse);
    assert!(cut.stats.cut > 0, "{cut:?}");
    assert!(
        cut.committed_not_acked > 0,
        "the cloud committed records whose ack the gateway never saw: {cut:?}"
    );
    let reset = phase(Fault::Reset);
    assert!(reset.stats.reset > 0 && reset.saw_down, "{reset:?}");

    // Nothing lost, nothing twice: every press is one event in the cloud.
    let pressed: i64 = cloud_presses(&cloud, &gateway_id(&gw)).await.values().sum();
    assert_eq!(pressed, i64::from(presses));
    assert!(delivery.alert_events >= presses as usize + resolved);
    assert!(
        delivery.telemetry_records > 0 && delivery.snapshots > 0,
        "{delivery:?}"
    );
    assert_eq!((delivery.epochs, delivery.epochs_in_cloud), (1, 1));

    drop(devices);
    drop(agent);
    cloud.stop().await;
}

/// A link that goes dead without a reset (a black hole) leaves the alert lane's last request
/// hanging in a connection that will never answer, for as long as its timeout. An alert raised
/// once the link is back must not wait for that: the lane gives the hung request up when the
/// alert is written and sends again at once. Bounded well below the timeouts (30 s configured,
/// 10 s for the alert lane), so the check is of the behaviour, not a measurement.
#[sqlx::test(migrations = false)]
async fn an_alert_raised_as_a_black_hole_lifts_does_not_wait_for_the_hung_request(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let proxy = FaultProxy::start(cloud.sync_addr()).await;
    // A camera, so the telemetry lane also leaves a connection in the pool, which the black
    // hole kills too: a second request must not pick that one.
    let (gw, specs) = gateway(&cloud, 1, true);
    gw.set("cloud", "sync_url", &format!("\"{}\"", proxy.sync_url()));
    gw.set("sync", "request_timeout_s", "30");
    let agent = gw.run_agent("").await;
    let mut devices = connect_all(&agent, &specs, 1).await;
    let gateway = gateway_id(&gw);
    let wait_for_cursor = |at_least: i64| {
        let (cloud, gateway) = (&cloud, gateway.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while alert_cursor(cloud, &gateway).await < at_least {
                assert!(
                    Instant::now() < deadline,
                    "alert cursor never reached {at_least}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    devices[1].count(ROOM, 12, 1).await;
    press(&mut devices[0], 1).await;
    wait_for_cursor(1).await;
    let counted = format!(
        "SELECT count(*) FROM snapshots WHERE gateway_id = '{gateway}' AND students_present = 12"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while cloud.rows::<(i64,)>(&counted).await[0].0 == 0 {
        assert!(
            Instant::now() < deadline,
            "the count never reached the cloud"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Dead link: the heartbeats (one a second) hang.
    proxy.set(Fault::Blackhole);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(proxy.stats().blackholed >= 1, "{:?}", proxy.stats());
    proxy.set(Fault::PassThrough);

    let before = alert_cursor(&cloud, &gateway).await;
    let start = Instant::now();
    press(&mut devices[0], 2).await;
    wait_for_cursor(before + 1).await;
    let took = start.elapsed();
    println!("press after the black hole → its record in the cloud: {took:?}");
    let log = agent.log();
    let tail = &log[log.len().saturating_sub(4_000)..];
    assert!(
        took < Duration::from_secs(5),
        "the new alert waited {took:?}, as long as a hung request; the agent's log ends:\n{tail}"
    );
    drop(devices);
    drop(agent);
    cloud.stop().await;
}
