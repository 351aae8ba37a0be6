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
use common::delivery::{Foreign, integrity, read_local, settled};
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
    let gw = Gateway::init_local();
    cloud.enroll(&gw, SCHOOL);
    gw.set("sync", "heartbeat_s", "1");
    gw.set("sync", "backoff_min_ms", "50");
    gw.set("sync", "backoff_max_s", "1");
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

    // The restored gateway's records, old and new, are all in the cloud once; the first
    // gateway's later history stays there under its own epoch.
    let after = settled(&cloud, &restored, SETTLE, Foreign::Allowed).await;
    assert!(!after.foreign.is_empty(), "{after:?}");
    let now = read_local(&restored.data);
    assert!(
        now.epochs.len() == at_backup.epochs.len() + 1,
        "a new epoch: {now:?}"
    );
    println!(
        "{pressed} presses under load; backup took {took:?} ({} bytes); alert head {} at the \
         backup, {} when the first gateway stopped, {} after the restore; before: {before:?}; \
         after: {after:?}",
        std::fs::metadata(&archive).unwrap().len(),
        at_backup.heads["alert"],
        original.heads["alert"],
        now.heads["alert"],
    );
    drop(button);
    drop(agent);
    cloud.stop().await;
}
