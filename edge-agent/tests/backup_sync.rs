//! A backup taken with `edge-agent backup` while the agent runs under load (buttons pressing,
//! the sync uploading), restored with `edge-agent restore` into a new directory and started
//! there: it runs, devices connect with their old bundles, and presses reach the cloud. The
//! records the first gateway wrote after the backup stay in the cloud under their own epoch;
//! the restored gateway's records (those in the backup and every new one) are in the cloud
//! exactly once, in order (`settled`, tests/common/delivery.rs).

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::button::FwDevice;
use common::cloud::TestCloud;
use common::delivery::{Foreign, gateway_id, integrity, read_local, settled};
use common::fleet::{Fleet, Kind, Spec};
use common::{Gateway, SCHOOL, mode, run, s};
use firmware_protocol::PressPattern;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const SETTLE: Duration = Duration::from_secs(60);

#[sqlx::test(migrations = false)]
async fn a_backup_of_a_running_agent_under_load_restores_into_a_gateway_that_syncs_on(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let gw = cloud.enrolled_gateway(SCHOOL);
    gw.set("sync", "thin_after_s", "86400");
    let specs: Vec<Spec> = (1..=4)
        .map(|i| {
            let id = format!("btn-{i}");
            let bundle = gw.add(&id, "button", "B-214");
            Spec {
                id,
                bundle,
                kind: Kind::Button { lo: 50, hi: 300 },
            }
        })
        .collect();
    let mut agent = gw.run_agent("").await;
    let fleet = Fleet::start(agent.mqtt, &specs, 0x5eed);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The backup, in the middle of it.
    let archive = gw.tmp.path().join("gw.hwbackup");
    let args = [
        "backup".to_owned(),
        "--data-dir".to_owned(),
        s(&gw.data).to_owned(),
        "--out".to_owned(),
        s(&archive).to_owned(),
    ];
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&archive), 0o600);
    tokio::time::sleep(Duration::from_secs(2)).await;
    fleet.finish_pressing();
    assert!(
        fleet.all_acked(Duration::from_secs(30)).await,
        "presses unanswered"
    );
    let reports = fleet.stop().await;
    let pressed: u32 = reports.iter().map(|r| r.pressed).sum();
    let before = settled(&cloud, &gw, SETTLE, Foreign::Refused).await;
    let (_, exit) = agent.terminate();
    assert!(exit.success());
    let original = read_local(&gw.data);

    // Restored into a new directory, checked, started.
    let tmp = tempfile::tempdir().unwrap();
    let restored = Gateway {
        data: tmp.path().join("gw"),
        tmp,
    };
    let out = run(&[
        "restore",
        "--from",
        s(&archive),
        "--data-dir",
        s(&restored.data),
    ]);
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(integrity(&restored.data), "ok");
    let at_backup = read_local(&restored.data);
    assert!(
        at_backup.heads["alert"] > 0 && at_backup.heads["alert"] < original.heads["alert"],
        "the backup holds some of the history, not all: {at_backup:?} vs {original:?}"
    );
    let agent = restored.run_agent("").await;
    let mut button = FwDevice::connect(agent.mqtt, &specs[0].bundle, &specs[0].id, 99).await;
    button.press(PressPattern::Single, 1).await;
    let ack = button
        .press_ack(Duration::from_secs(10))
        .await
        .expect("the restored gateway acknowledges a press");
    assert_eq!(ack.press_seq, 1);

    // The backup was taken in the middle of an epoch, which the first gateway went on
    // writing after it: the cloud holds that epoch up to the first gateway's head, beyond
    // the restored database's. The restored gateway's new records are under a new epoch,
    // numbered on from the backup's head, and every one of them reaches the cloud, once, in
    // order; the lost history stays there under the old epoch, untouched.
    let gateway = gateway_id(&restored);
    let deadline = Instant::now() + SETTLE;
    let (now, new_epoch) = loop {
        let now = read_local(&restored.data);
        let new_epoch = *now.epochs.last().unwrap();
        let cloud_new: Vec<(String, String, String)> = cloud
            .rows(&format!(
                "SELECT alert_id::text, event, state FROM alert_events \
                 WHERE gateway_id = '{gateway}' AND epoch = {new_epoch} ORDER BY seq"
            ))
            .await;
        if now.outbox == 0 && cloud_new == now.events[at_backup.events.len()..] {
            break (now, new_epoch);
        }
        assert!(
            Instant::now() < deadline,
            "the restored gateway's records did not all reach the cloud: local {now:?}, \
             cloud {cloud_new:?}\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        now.epochs.len(),
        at_backup.epochs.len() + 1,
        "a new epoch: {now:?}"
    );
    assert!(
        now.events.len() > at_backup.events.len(),
        "the new press is there"
    );
    let old_epoch = at_backup.epochs.last().unwrap();
    let old: Vec<(i64, i64)> = cloud
        .rows(&format!(
            "SELECT count(*), max(seq) FROM alert_events \
             WHERE gateway_id = '{gateway}' AND epoch = {old_epoch}"
        ))
        .await;
    assert_eq!(
        old[0].1, original.heads["alert"],
        "the lost history is all in the cloud"
    );
    let first_new: Vec<(i64,)> = cloud
        .rows(&format!(
            "SELECT min(seq) FROM alert_events \
             WHERE gateway_id = '{gateway}' AND epoch = {new_epoch}"
        ))
        .await;
    assert_eq!(first_new[0].0, at_backup.heads["alert"] + 1);
    let after = (old[0].0, now.heads["alert"]);
    println!(
        "{pressed} presses under load; backup took {took:?} ({} bytes); alert head {} at the \
         backup, {} when the first gateway stopped, {} after the restore; before: {before:?}; \
         (old-epoch events in the cloud, restored head): {after:?}",
        std::fs::metadata(&archive).unwrap().len(),
        at_backup.heads["alert"],
        original.heads["alert"],
        now.heads["alert"],
    );
    drop(button);
    drop(agent);
    cloud.stop().await;
}
