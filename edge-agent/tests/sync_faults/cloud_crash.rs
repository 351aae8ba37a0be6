//! `kill -9` of the cloud and an immediate restart of its Postgres, mid-sync.

use std::time::{Duration, Instant};

use super::{ROOM, SETTLE, alert_cursor, cloud_presses, connect_all, gateway, press};
use crate::common::button::FwDevice;
use crate::common::cloud::TestCloud;
use crate::common::delivery::{Foreign, gateway_id, read_local, settled};
use crate::common::postgres::PrivatePostgres;

/// Presses each button `n` more times, continuing its press seqs in `seqs`.
async fn press_each(buttons: &mut [FwDevice], seqs: &mut [u32], n: u32) {
    for _ in 0..n {
        for (button, seq) in buttons.iter_mut().zip(seqs.iter_mut()) {
            *seq += 1;
            press(button, *seq).await;
        }
    }
}

/// Polls until the cloud's alert cursor for `gateway` passes `past` (at most 30 s).
async fn wait_for_cursor(cloud: &TestCloud, gateway: &str, past: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = alert_cursor(cloud, gateway).await;
        if now > past {
            return now;
        }
        assert!(Instant::now() < deadline, "the cloud stays at {now}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The cloud is killed with SIGKILL while the gateway drains a backlog (one record per
/// request, so the drain takes a while), started again, and then its Postgres is restarted
/// in immediate mode (every backend killed, recovery from the WAL) while the gateway drains
/// the next backlog. Nothing is lost or duplicated. The cluster is this test's own, so the
/// restart disturbs no other test.
#[tokio::test]
async fn the_cloud_killed_and_postgres_restarted_mid_sync_lose_and_duplicate_nothing() {
    let started = Instant::now();
    let pg = PrivatePostgres::start();
    let opts = pg.database("hallwatch_faults").await;
    let mut cloud = TestCloud::start(&opts).await;
    let (gw, specs) = gateway(&cloud, 3, true);
    gw.set("sync", "batch_max_records", "1");
    let agent = gw.run_agent("").await;
    let mut devices = connect_all(&agent, &specs, 1).await;
    let (camera, buttons) = devices.split_last_mut().unwrap();
    let mut seqs = vec![0u32; buttons.len()];
    let gateway = gateway_id(&gw);

    // A backlog while the cloud is down; the buttons are answered all the same.
    cloud.kill();
    press_each(buttons, &mut seqs, 15).await;
    for i in 0..10 {
        camera.count(ROOM, i, 1).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let backlog = read_local(&gw.data).outbox;
    assert!(backlog >= 45, "{backlog}");

    // The cloud comes back and drains it; kill -9 once a few records are in.
    let before = alert_cursor(&cloud, &gateway).await;
    cloud.restart().await;
    let merged = wait_for_cursor(&cloud, &gateway, before + 4).await;
    cloud.kill();
    let left_at_kill = read_local(&gw.data).outbox;
    assert!(left_at_kill > 0, "the backlog drained before the kill");
    press_each(buttons, &mut seqs, 3).await;

    // Back again; Postgres restarts in the middle of the next drain.
    cloud.restart().await;
    let merged_again = wait_for_cursor(&cloud, &gateway, merged + 2).await;
    let left_at_restart = read_local(&gw.data).outbox;
    let restart = pg.restart_immediately();
    assert!(
        left_at_restart > 0,
        "the backlog drained before the restart"
    );
    press_each(buttons, &mut seqs, 3).await;

    let delivery = settled(&cloud, &gw, SETTLE, Foreign::Refused).await;
    let presses: u32 = seqs.iter().sum();
    let pressed: i64 = cloud_presses(&cloud, &gateway).await.values().sum();
    assert_eq!(pressed, i64::from(presses), "{}", pg.log());
    assert_eq!((delivery.epochs, delivery.epochs_in_cloud), (1, 1));
    // What the gateway last saw go wrong (the kills, or the restart if a request met it).
    let (_, status) = agent.get("/api/v1/sync").await;
    println!(
        "backlog {backlog}; cloud killed after {merged} alert records with {left_at_kill} \
         waiting; Postgres restarted ({restart:?}) after {merged_again} with \
         {left_at_restart} waiting; {presses} presses; {delivery:?}; last error {}; {:?} in all",
        status["last_error"]["message"],
        started.elapsed()
    );
    drop(devices);
    drop(agent);
    cloud.stop().await;
    drop(pg);
}
