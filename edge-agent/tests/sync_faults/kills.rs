//! `kill -9` of the agent, twenty times, under devices that reconnect and retransmit.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{SETTLE, cloud_presses, gateway, resolve_open};
use crate::common::cloud::TestCloud;
use crate::common::delivery::{Foreign, gateway_id, integrity, open_read_only, settled};
use crate::common::fleet::{Fleet, Rng};

const KILLS: usize = 20;

/// The seed of the kill moments: `FAULT_SEED` to repeat a run, else the clock.
fn seed() -> u64 {
    std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
                    % u128::from(u64::MAX),
            )
            .unwrap()
        })
}

/// The agent is killed with SIGKILL twenty times at random moments (seeded; the seed is
/// printed, `FAULT_SEED=…` repeats it) while two buttons press and a camera counts, each
/// reconnecting after every restart and retransmitting unacknowledged presses as firmware
/// does. The database passes `PRAGMA integrity_check` after every kill; when things settle,
/// every press that got a `PressAck` is in the cloud exactly once.
#[sqlx::test(migrations = false)]
async fn twenty_kill_9s_of_the_agent_lose_and_duplicate_no_acknowledged_press(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let started = Instant::now();
    let seed = seed();
    println!("kill moments from seed {seed} (FAULT_SEED={seed} repeats them)");
    let cloud = TestCloud::start(&opts).await;
    let (gw, specs) = gateway(&cloud, 2, true);
    let mut agent = gw.run_agent("").await;
    let fleet = Fleet::start(agent.mqtt, &specs, seed);
    let mut rng = Rng::new(seed);
    let mut resolved = 0;
    for kill in 1..=KILLS {
        tokio::time::sleep(rng.millis(300, 2_000)).await;
        agent.process.0.kill().unwrap();
        agent.process.0.wait().unwrap();
        assert_eq!(integrity(&gw.data), "ok", "after kill {kill}");
        agent = gw.run_agent("").await;
        // Now and then the front office closes what is open, so presses raise new alerts.
        if kill % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            resolved += resolve_open(&agent).await;
        }
    }
    fleet.finish_pressing();
    assert!(
        fleet.all_acked(Duration::from_secs(30)).await,
        "presses still unacknowledged: {:?}",
        fleet.reports()
    );
    let reports = fleet.stop().await;
    let delivery = settled(&cloud, &gw, SETTLE, Foreign::Refused).await;

    // Each acknowledged press is a press row of the gateway's, joined to an alert...
    let db = open_read_only(&gw.data);
    let mut acked_per_alert: BTreeMap<String, i64> = BTreeMap::new();
    let (mut pressed, mut offline, mut acked, mut retransmitted, mut connections) = (0, 0, 0, 0, 0);
    for report in &reports {
        pressed += report.pressed;
        offline += report.pressed_offline;
        acked += report.acked.len();
        retransmitted += report.retransmissions;
        connections += report.connections;
        if report.id.starts_with("btn-") {
            assert_eq!(
                report.acked,
                (1..=report.pressed).collect::<BTreeSet<u32>>(),
                "{report:?}"
            );
        }
        for press_seq in &report.acked {
            let alert: String = db
                .query_row(
                    "SELECT alert_id FROM presses WHERE device_id = ?1 AND boot = ?2 \
                     AND press_seq = ?3",
                    (&report.id, report.boot, press_seq),
                    |r| r.get(0),
                )
                .unwrap_or_else(|e| {
                    panic!("{} press {press_seq} acked, not stored: {e}", report.id)
                });
            *acked_per_alert.entry(alert).or_default() += 1;
        }
    }
    // Presses made while the gateway was down were kept and delivered after its restart.
    assert!(offline > 0, "{reports:?}");
    // ...and the gateway holds no other press.
    let stored: i64 = db
        .query_row("SELECT count(*) FROM presses", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, i64::try_from(acked).unwrap());
    // In the cloud, each alert has one event per press (`triggered`, then `pressed`) and
    // counts exactly its presses.
    let gateway = gateway_id(&gw);
    assert_eq!(cloud_presses(&cloud, &gateway).await, acked_per_alert);
    let press_counts: Vec<(String, i32)> = cloud
        .rows(&format!(
            "SELECT alert_id::text, press_count FROM alerts WHERE gateway_id = '{gateway}'"
        ))
        .await;
    let press_counts: BTreeMap<String, i64> = press_counts
        .into_iter()
        .map(|(id, n)| (id, i64::from(n)))
        .collect();
    assert_eq!(press_counts, acked_per_alert);
    // One epoch per start, and the cloud heard from most of them.
    assert_eq!(delivery.epochs, KILLS + 1);

    println!(
        "{KILLS} kills, {KILLS} integrity checks ok; {pressed} presses ({offline} while the \
         gateway was down), {acked} acknowledged, {retransmitted} retransmissions, {connections} device connections, {} alerts, \
         {resolved} resolved; {delivery:?}; {:?} in all",
        acked_per_alert.len(),
        started.elapsed()
    );
    drop(db);
    let (_, exit) = agent.terminate();
    assert!(exit.success());
    cloud.stop().await;
}
