//! The check after every sync fault: nothing lost, nothing duplicated, in order, no gaps.
//!
//! It compares what the gateway wrote (its SQLite file, opened read-only beside the running
//! agent, which WAL allows) with what the cloud merged (Postgres):
//!
//! - each lane's cursors in the cloud, taken in the order of the gateway's own epochs, end
//!   one after the other and the last one at the lane's head (`outbox_lanes.head`, the last
//!   seq the gateway gave out), with nothing dropped;
//! - the cloud's alert events of those epochs are exactly the gateway's local `alert_events`
//!   (same count, same alerts and events, same order), and their seqs, with one command
//!   result per cloud command carried out, are exactly 1..=head of the alert lane;
//! - the cloud's snapshots of those epochs are as many as the gateway's local snapshots;
//! - the gateway's outbox is empty: everything was acknowledged.
//!
//! Cursors of epochs the gateway does not know are only allowed for a gateway restored from
//! a backup (the epochs of the history it lost); [`settled`] returns them for the test to
//! account for.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::Gateway;
use super::cloud::TestCloud;

/// Whether cursors of epochs the gateway does not know may exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Foreign {
    /// None: every record in the cloud is one this gateway's database wrote.
    Refused,
    /// The gateway was restored from a backup: the cloud also holds a lost history.
    Allowed,
}

/// What was delivered, once the check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// The gateway's alert lane head: alert records 1..=this are in the cloud once each.
    pub(crate) alert_records: i64,
    /// The same for telemetry.
    pub(crate) telemetry_records: i64,
    /// Alert events (local = cloud).
    pub(crate) alert_events: usize,
    /// Snapshots (local = cloud).
    pub(crate) snapshots: i64,
    /// Epochs the gateway's database has written under.
    pub(crate) epochs: usize,
    /// Of those, the ones the cloud has a cursor for.
    pub(crate) epochs_in_cloud: usize,
    /// Cursors of epochs this database does not know: `(epoch, lane, last_seq)`.
    pub(crate) foreign: Vec<(i64, String, i64)>,
}

/// What the gateway's database says, read in one read transaction.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    /// `outbox_lanes.head` per lane.
    pub(crate) heads: BTreeMap<String, i64>,
    /// Epochs, oldest first.
    pub(crate) epochs: Vec<i64>,
    /// Records waiting in the outbox.
    pub(crate) outbox: i64,
    /// `(alert_id, event, state)` in the order they were written.
    pub(crate) events: Vec<(String, String, String)>,
    /// Cloud commands carried out (each wrote one command-result record).
    pub(crate) commands: i64,
    pub(crate) snapshots: i64,
}

/// The gateway's database, opened read-only.
pub(crate) fn open_read_only(data: &Path) -> Connection {
    let conn = Connection::open_with_flags(
        data.join("edge.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// `PRAGMA integrity_check` on the gateway's database, read-only: `"ok"` when sound.
pub(crate) fn integrity(data: &Path) -> String {
    let conn = open_read_only(data);
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.join("; ")
}

/// Reads [`Local`] from the gateway's data directory.
pub(crate) fn read_local(data: &Path) -> Local {
    let mut conn = open_read_only(data);
    let tx = conn.transaction().unwrap();
    let heads = tx
        .prepare("SELECT lane, head FROM outbox_lanes")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let epochs = tx
        .prepare("SELECT epoch FROM epochs ORDER BY started_at, rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let events = tx
        .prepare("SELECT alert_id, event, state FROM alert_events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let one = |sql: &str| -> i64 { tx.query_row(sql, [], |r| r.get(0)).unwrap() };
    let local = Local {
        heads,
        epochs,
        outbox: one("SELECT count(*) FROM outbox"),
        events,
        commands: one("SELECT count(*) FROM cloud_commands"),
        snapshots: one("SELECT count(*) FROM snapshots"),
    };
    drop(tx);
    local
}

/// What the cloud holds for one gateway.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    /// `(epoch, lane, last_seq, dropped in all)`.
    pub(crate) cursors: Vec<(i64, String, i64, i64)>,
    /// `(epoch, seq, alert_id, event, state)`.
    pub(crate) events: Vec<(i64, i64, String, String, String)>,
    /// `(epoch, seq)` of snapshots.
    pub(crate) snapshots: Vec<(i64, i64)>,
}

/// The gateway's id, as enrollment wrote it into agent.toml.
pub(crate) fn gateway_id(gw: &Gateway) -> String {
    let config = edge_agent::config::Config::load(&gw.data).unwrap();
    config.cloud.unwrap().gateway_id.as_str().to_owned()
}

/// Reads [`Remote`] for `gateway`.
pub(crate) async fn read_remote(cloud: &TestCloud, gateway: &str) -> Remote {
    let cursors = cloud
        .rows(&format!(
            "SELECT epoch, lane, last_seq, \
               dropped_thinned + dropped_storage_budget + dropped_dead_lettered \
             FROM sync_cursors WHERE gateway_id = '{gateway}'"
        ))
        .await;
    let events = cloud
        .rows(&format!(
            "SELECT epoch, seq, alert_id::text, event, state FROM alert_events \
             WHERE gateway_id = '{gateway}'"
        ))
        .await;
    let snapshots = cloud
        .rows(&format!(
            "SELECT epoch, seq FROM snapshots WHERE gateway_id = '{gateway}'"
        ))
        .await;
    Remote {
        cursors,
        events,
        snapshots,
    }
}

/// Waits (at most `wait`) until the gateway and the cloud agree as the module says, and
/// returns the figures; panics with the last difference and the agent's log if they never
/// do. Records may still be on their way when it is called: it reads again until they
/// agree, and a record lost or duplicated never lets them.
pub(crate) async fn settled(
    cloud: &TestCloud,
    gw: &Gateway,
    wait: Duration,
    foreign: Foreign,
) -> Delivery {
    let gateway = gateway_id(gw);
    let deadline = Instant::now() + wait;
    loop {
        let local = read_local(&gw.data);
        let remote = read_remote(cloud, &gateway).await;
        match compare(&local, &remote, foreign) {
            Ok(delivery) => return delivery,
            Err(why) if Instant::now() > deadline => {
                let log =
                    std::fs::read_to_string(gw.tmp.path().join("agent.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "the gateway and the cloud do not agree after {wait:?}: {why}\n\
                     local: {local:?}\ncloud cursors: {:?}\n--- agent log (tail) ---\n{}",
                    remote.cursors,
                    tail.join("\n")
                );
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The comparison itself: `Err` says the first difference found.
pub(crate) fn compare(
    local: &Local,
    remote: &Remote,
    foreign: Foreign,
) -> Result<Delivery, String> {
    if local.outbox != 0 {
        return Err(format!("{} records still wait in the outbox", local.outbox));
    }
    let order: BTreeMap<i64, usize> = local
        .epochs
        .iter()
        .enumerate()
        .map(|(i, e)| (*e, i))
        .collect();
    let strange: Vec<(i64, String, i64)> = remote
        .cursors
        .iter()
        .filter(|c| !order.contains_key(&c.0))
        .map(|c| (c.0, c.1.clone(), c.2))
        .collect();
    if foreign == Foreign::Refused && !strange.is_empty() {
        return Err(format!(
            "the cloud has cursors of unknown epochs: {strange:?}"
        ));
    }

    // Each lane: the gateway's epochs' cursors end one after the other, the last at the head.
    // `ranges` keeps, per (epoch, lane), the seqs that epoch covers.
    let mut ranges: BTreeMap<(i64, String), (i64, i64)> = BTreeMap::new();
    for lane in ["alert", "telemetry"] {
        let head = local.heads.get(lane).copied().unwrap_or(0);
        let mut own: Vec<&(i64, String, i64, i64)> = remote
            .cursors
            .iter()
            .filter(|c| c.1 == lane && order.contains_key(&c.0))
            .collect();
        own.sort_by_key(|c| order[&c.0]);
        let mut covered = 0;
        for (epoch, _, last, dropped) in own {
            if *dropped != 0 {
                return Err(format!(
                    "{lane} cursor of epoch {epoch} counts {dropped} dropped"
                ));
            }
            if *last <= covered {
                return Err(format!(
                    "{lane} cursor of epoch {epoch} ends at {last}, not after {covered}"
                ));
            }
            ranges.insert((*epoch, lane.to_owned()), (covered + 1, *last));
            covered = *last;
        }
        if covered != head {
            return Err(format!(
                "the cloud has the {lane} lane through {covered}, the gateway through {head}"
            ));
        }
    }

    // Alert events: the local log, record for record, at the seqs of their epochs.
    let mut events: Vec<&(i64, i64, String, String, String)> = remote
        .events
        .iter()
        .filter(|e| order.contains_key(&e.0))
        .collect();
    events.sort_by_key(|e| (order[&e.0], e.1));
    let mut previous = 0;
    for (epoch, seq, ..) in &events {
        let Some((from, through)) = ranges.get(&(*epoch, "alert".to_owned())) else {
            return Err(format!("alert event {epoch}/{seq} has no cursor"));
        };
        if seq < from || seq > through || *seq <= previous {
            return Err(format!(
                "alert event {epoch}/{seq} is outside its epoch's {from}..={through} or out of order"
            ));
        }
        previous = *seq;
    }
    let alert_head = local.heads.get("alert").copied().unwrap_or(0);
    let records = i64::try_from(events.len()).unwrap() + local.commands;
    if records != alert_head {
        return Err(format!(
            "the cloud has {} alert events and the gateway carried out {} commands: {records} \
             alert records, but the gateway wrote {alert_head}",
            events.len(),
            local.commands
        ));
    }
    let cloud_log: Vec<(String, String, String)> = events
        .iter()
        .map(|e| (e.2.clone(), e.3.clone(), e.4.clone()))
        .collect();
    if cloud_log != local.events {
        let at = cloud_log
            .iter()
            .zip(&local.events)
            .position(|(a, b)| a != b)
            .unwrap_or(cloud_log.len().min(local.events.len()));
        return Err(format!(
            "the alert logs differ at entry {at} (cloud {}, local {}): cloud {:?}, local {:?}",
            cloud_log.len(),
            local.events.len(),
            cloud_log.get(at),
            local.events.get(at)
        ));
    }

    // Snapshots: one per local snapshot, each inside its epoch's telemetry range.
    let mut snapshots: Vec<(i64, i64)> = remote
        .snapshots
        .iter()
        .filter(|s| order.contains_key(&s.0))
        .copied()
        .collect();
    snapshots.sort_unstable();
    snapshots.dedup();
    for (epoch, seq) in &snapshots {
        match ranges.get(&(*epoch, "telemetry".to_owned())) {
            Some((from, through)) if seq >= from && seq <= through => {}
            _ => {
                return Err(format!(
                    "snapshot {epoch}/{seq} is outside its epoch's cursor"
                ));
            }
        }
    }
    let in_cloud = i64::try_from(snapshots.len()).unwrap();
    if in_cloud != local.snapshots
        || remote
            .snapshots
            .iter()
            .filter(|s| order.contains_key(&s.0))
            .count()
            != snapshots.len()
    {
        return Err(format!(
            "the cloud has {} snapshot rows ({in_cloud} distinct), the gateway {}",
            remote.snapshots.len(),
            local.snapshots
        ));
    }

    let mut epochs_in_cloud: Vec<i64> = ranges.keys().map(|k| k.0).collect();
    epochs_in_cloud.dedup();
    Ok(Delivery {
        alert_records: alert_head,
        telemetry_records: local.heads.get("telemetry").copied().unwrap_or(0),
        alert_events: events.len(),
        snapshots: local.snapshots,
        epochs: local.epochs.len(),
        epochs_in_cloud: epochs_in_cloud.len(),
        foreign: strange,
    })
}
