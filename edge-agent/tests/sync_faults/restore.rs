//! A gateway restored from an old backup.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{SETTLE, gateway, press, resolve_open};
use crate::common::Gateway;
use crate::common::agent::RunningAgent;
use crate::common::button::FwDevice;
use crate::common::cloud::TestCloud;
use crate::common::delivery::{Foreign, gateway_id, read_local, settled};
use crate::common::fleet::Spec;

fn copy_dir(from: &Path, to: &Path) {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the agent, presses `presses` (continuing `seq`), resolves, and waits until the cloud
/// has it all; returns the agent and the button, still running.
async fn history(
    cloud: &TestCloud,
    gw: &Gateway,
    spec: &Spec,
    seq: &mut u32,
    presses: u32,
) -> (RunningAgent, FwDevice) {
    let agent = gw.run_agent("").await;
    let mut button = FwDevice::connect(agent.mqtt, &spec.bundle, &spec.id, 1).await;
    for _ in 0..presses {
        *seq += 1;
        press(&mut button, *seq).await;
    }
    assert_eq!(resolve_open(&agent).await, 1);
    settled(cloud, gw, SETTLE, Foreign::Allowed).await;
    (agent, button)
}

/// Stops the agent first, so the button's going writes nothing more (the gateway's own
/// shutdown publishes no last will).
fn stop(mut agent: RunningAgent, button: FwDevice) {
    let (_, exit) = agent.terminate();
    assert!(exit.success());
    drop(button);
}

/// A gateway whose data directory is restored from an old backup counts its seqs again from
/// where the backup stood, so its new records carry numbers the cloud already holds for
/// records of the history the restore threw away. The epoch is what tells them apart: the
/// agent draws a new random epoch at every start and writes it on every record, and the
/// cloud keys records and cursors by (gateway, epoch, lane, seq). The lost history's records
/// stay in the cloud under their epoch; the restored gateway starts under an epoch the cloud
/// has never seen, whose cursor opens just before its first record, so its new records are
/// merged, not skipped as replays of the numbers the cloud already has. Records the backup
/// still held unsent (the test takes it while the cloud is away) went to the cloud during the
/// lost history; after the restore they are sent again under their own old epoch and
/// recognised as replays.
#[sqlx::test(migrations = false)]
async fn a_gateway_restored_from_an_old_backup_keeps_its_new_records_under_a_new_epoch(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let mut cloud = TestCloud::start(&opts).await;
    let (gw, specs) = gateway(&cloud, 1, false);
    let gateway = gateway_id(&gw);
    let mut seq = 0;

    // History A, then the backup, taken while the cloud was away so it holds a record the
    // cloud has not acknowledged yet.
    let (agent, mut button) = history(&cloud, &gw, &specs[0], &mut seq, 3).await;
    cloud.kill();
    seq += 1;
    press(&mut button, seq).await;
    stop(agent, button);
    let backup: PathBuf = gw.tmp.path().join("backup");
    copy_dir(&gw.data, &backup);
    let at_backup = read_local(&backup);
    assert!(at_backup.outbox > 0, "{at_backup:?}");
    cloud.restart().await;
    // History B, which the restore will throw away.
    let (agent, button) = history(&cloud, &gw, &specs[0], &mut seq, 5).await;
    stop(agent, button);
    let lost = read_local(&gw.data);
    // The restore, and history C.
    std::fs::remove_dir_all(&gw.data).unwrap();
    copy_dir(&backup, &gw.data);
    assert_eq!(
        read_local(&gw.data).heads,
        at_backup.heads,
        "the seqs went back"
    );
    let (agent, button) = history(&cloud, &gw, &specs[0], &mut seq, 3).await;
    let restored = read_local(&gw.data);

    // The restored gateway's own records (A and C) are all in the cloud, once, in order.
    let delivery = settled(&cloud, &gw, SETTLE, Foreign::Allowed).await;
    // History B's epoch is the only one the restored database does not know, and the cloud
    // still has all of B under it.
    let b_epochs: Vec<i64> = lost
        .epochs
        .iter()
        .copied()
        .filter(|e| !at_backup.epochs.contains(e))
        .collect();
    assert_eq!(b_epochs.len(), 1);
    let foreign_epochs: BTreeSet<i64> = delivery.foreign.iter().map(|f| f.0).collect();
    assert_eq!(foreign_epochs, b_epochs.iter().copied().collect());
    let b_alert = delivery
        .foreign
        .iter()
        .find(|f| f.1 == "alert")
        .expect("history B's alert records are in the cloud");
    assert_eq!(b_alert.2, lost.heads["alert"]);
    let b_events: Vec<(String, String, String)> = cloud
        .rows(&format!(
            "SELECT alert_id::text, event, state FROM alert_events \
             WHERE gateway_id = '{gateway}' AND epoch = {} ORDER BY seq",
            b_epochs[0]
        ))
        .await;
    assert_eq!(b_events, lost.events[at_backup.events.len()..]);
    // C reused B's numbers, and none of C was taken for a replay of B: each reused number is
    // in the cloud twice, under B's epoch and under C's.
    let c_epoch = *restored.epochs.last().unwrap();
    let reused: Vec<(i64, Vec<i64>)> = cloud
        .rows(&format!(
            "SELECT seq, array_agg(epoch ORDER BY epoch) FROM alert_events \
             WHERE gateway_id = '{gateway}' GROUP BY seq HAVING count(*) > 1 ORDER BY seq"
        ))
        .await;
    let c_records = restored.heads["alert"] - at_backup.heads["alert"];
    let b_records = lost.heads["alert"] - at_backup.heads["alert"];
    assert!(c_records > 0 && b_records > 0);
    assert_eq!(
        reused.len(),
        usize::try_from(c_records.min(b_records)).unwrap()
    );
    let mut both = vec![b_epochs[0], c_epoch];
    both.sort_unstable();
    assert!(reused.iter().all(|r| r.1 == both), "{reused:?}");
    // Every record of both histories: A, B and C.
    let all: Vec<(i64,)> = cloud
        .rows(&format!(
            "SELECT count(*) FROM alert_events WHERE gateway_id = '{gateway}'"
        ))
        .await;
    let expected = lost.events.len() + restored.events.len() - at_backup.events.len();
    assert_eq!(all[0].0, i64::try_from(expected).unwrap());
    println!(
        "alert head: {} at the backup ({} records unsent in it), {} when lost, {} after the \
         restore; {} seqs reused under a new epoch; {} alert events in the cloud; {delivery:?}",
        at_backup.heads["alert"],
        at_backup.outbox,
        lost.heads["alert"],
        restored.heads["alert"],
        reused.len(),
        all[0].0
    );
    stop(agent, button);
    cloud.stop().await;
}
