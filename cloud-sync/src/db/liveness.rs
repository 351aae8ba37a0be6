//! Whether each gateway is online, as the cloud sees it: when it last synced, and the
//! `offline`/`online` events of its outages (table `gateway_events`, announced on channel
//! `hallwatch_gateways` as `{"school_id", "gateway_id", "state"}`).
//!
//! Every sync request that reaches the merge is proof of life (`heard_from`, in the
//! request's transaction). Writing `last_sync_at` on each of them would turn heartbeats and
//! replays into row churn, so it is written at most once per [`Liveness::record_every`]; a
//! request in between only reads it. [`mark_silent`] — the service's liveness task, on every
//! replica — marks a gateway offline when even the stalest reading of `last_sync_at` proves a
//! silence of `offline_after`. Both transitions are conditional on the row's current state
//! under its row lock, so with any number of replicas and concurrent requests each outage
//! gives exactly one `offline` and one `online` event.
//!
//! A gateway that has never synced (`last_sync_at` NULL: enrolled, not yet installed) is
//! never reported offline; it takes part from its first sync on.

use shared::ids::{GatewayId, SchoolId};
use sqlx::{PgConnection, PgPool};

use super::{DbError, Scope, begin};
use crate::config::Liveness;
use crate::pki::GatewayIdentity;

/// The channel liveness changes are announced on.
pub const CHANNEL: &str = "hallwatch_gateways";

/// What a request's first look at the gateway row said (read without a lock, along with the
/// cursor or the gateway's revocation). The columns, for a gateway row `g` and `record_every`
/// in seconds as `$n`: `g.offline_since IS NOT NULL, g.last_sync_at IS NULL OR
/// g.last_sync_at < now() - make_interval(secs => $n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastSeen {
    /// Marked offline.
    pub offline: bool,
    /// Never synced, or `last_sync_at` older than `record_every`: it is time to write it.
    pub due: bool,
}

/// Records that `gateway` synced, given what the request saw of it. Writes nothing unless the
/// gateway was offline or `last_sync_at` is due; when it was offline, marks it online, appends
/// the event and notifies. Call it late in the request's transaction: it may lock the gateway
/// row until the commit.
pub(crate) async fn heard_from(
    conn: &mut PgConnection,
    gateway: &GatewayIdentity,
    seen: LastSeen,
    liveness: &Liveness,
) -> Result<(), sqlx::Error> {
    if !seen.offline && !seen.due {
        return Ok(());
    }
    let school = gateway.school_id.as_str();
    let gw = gateway.gateway_id.as_str();
    // Read again under the row lock: another request or the liveness task may have moved it.
    // NO KEY UPDATE, like the UPDATE that follows: it does not wait for the KEY SHARE locks
    // that foreign keys (a new cursor of the other lane, say) hold on the row until their
    // commit, which would deadlock two lanes of one gateway.
    let locked: Option<(bool, bool)> = sqlx::query_as(
        "SELECT g.offline_since IS NOT NULL, \
           g.last_sync_at IS NULL OR g.last_sync_at < now() - make_interval(secs => $3) \
         FROM gateways g WHERE g.school_id = $1 AND g.gateway_id = $2 FOR NO KEY UPDATE",
    )
    .bind(school)
    .bind(gw)
    .bind(liveness.record_every.as_secs_f64())
    .fetch_optional(&mut *conn)
    .await?;
    match locked {
        Some((true, _)) => {
            sqlx::query(
                "WITH back AS ( \
                   UPDATE gateways SET offline_since = NULL, last_sync_at = now() \
                   WHERE school_id = $1 AND gateway_id = $2 \
                   RETURNING school_id, gateway_id, last_sync_at), \
                 event AS ( \
                   INSERT INTO gateway_events (school_id, gateway_id, state, last_sync_at) \
                   SELECT school_id, gateway_id, 'online', last_sync_at FROM back) \
                 SELECT count(pg_notify($3, json_build_object('school_id', school_id, \
                   'gateway_id', gateway_id, 'state', 'online')::text)) FROM back",
            )
            .bind(school)
            .bind(gw)
            .bind(CHANNEL)
            .execute(&mut *conn)
            .await?;
            tracing::info!(school = %gateway.school_id, gateway = %gateway.gateway_id, "gateway back online");
        }
        Some((false, true)) => {
            sqlx::query(
                "UPDATE gateways SET last_sync_at = now() \
                 WHERE school_id = $1 AND gateway_id = $2",
            )
            .bind(school)
            .bind(gw)
            .execute(&mut *conn)
            .await?;
        }
        Some((false, false)) | None => {}
    }
    Ok(())
}

/// Marks offline every gateway, of every school, that has synced before and not since
/// `offline_after` (plus `record_every`, the most by which its `last_sync_at` can lag the
/// real last sync, so a gateway is never marked early). Appends an `offline` event and
/// notifies for each. Returns the gateways marked by this call: a gateway already marked,
/// also by another replica at the same moment, is not marked again.
pub async fn mark_silent(
    pool: &PgPool,
    liveness: &Liveness,
) -> Result<Vec<(SchoolId, GatewayId)>, DbError> {
    let silence = liveness.offline_after + liveness.record_every;
    let mut tx = begin(pool, Scope::AllSchools).await?;
    // Rows are locked first, skipping any that are locked already: by another replica
    // marking it (which will write the event), or by a sync recording the gateway alive
    // (which proves it is not silent). A row that another replica marked and committed is
    // re-checked against the condition and left out. So each gateway is marked once, and no
    // replica waits on another or on a sync.
    let marked: Vec<(String, String)> = sqlx::query_as(
        "WITH silent AS ( \
           SELECT school_id, gateway_id FROM gateways \
           WHERE offline_since IS NULL AND revoked_at IS NULL AND last_sync_at IS NOT NULL \
             AND last_sync_at < now() - make_interval(secs => $1) \
           FOR NO KEY UPDATE SKIP LOCKED), \
         marked AS ( \
           UPDATE gateways g SET offline_since = now() FROM silent s \
           WHERE g.school_id = s.school_id AND g.gateway_id = s.gateway_id \
           RETURNING g.school_id, g.gateway_id, g.last_sync_at), \
         event AS ( \
           INSERT INTO gateway_events (school_id, gateway_id, state, last_sync_at) \
           SELECT school_id, gateway_id, 'offline', last_sync_at FROM marked), \
         notified AS ( \
           SELECT school_id, gateway_id, pg_notify($2, json_build_object('school_id', \
             school_id, 'gateway_id', gateway_id, 'state', 'offline')::text) FROM marked) \
         SELECT school_id, gateway_id FROM notified ORDER BY 1, 2",
    )
    .bind(silence.as_secs_f64())
    .bind(CHANNEL)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(marked
        .into_iter()
        .filter_map(|(school, gw)| Some((school.parse().ok()?, gw.parse().ok()?)))
        .collect())
}

/// How many gateways, of every school, are in each liveness state (revoked ones left out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayCounts {
    /// Synced, and not marked offline since.
    pub online: u64,
    /// Marked offline and not heard from since.
    pub offline: u64,
    /// Enrolled, never synced.
    pub never_synced: u64,
}

/// The gateways per liveness state, for the metrics.
pub async fn counts(pool: &PgPool) -> Result<GatewayCounts, DbError> {
    let mut tx = begin(pool, Scope::AllSchools).await?;
    let (online, offline, never): (i64, i64, i64) = sqlx::query_as(
        "SELECT \
           count(*) FILTER (WHERE last_sync_at IS NOT NULL AND offline_since IS NULL), \
           count(*) FILTER (WHERE offline_since IS NOT NULL), \
           count(*) FILTER (WHERE last_sync_at IS NULL AND offline_since IS NULL) \
         FROM gateways WHERE revoked_at IS NULL",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(GatewayCounts {
        online: n(online),
        offline: n(offline),
        never_synced: n(never),
    })
}
