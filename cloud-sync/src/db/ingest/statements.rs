//! The merge statements, one per record kind, each a single round trip whatever the batch
//! size: the columns travel as arrays and `UNNEST` turns them back into rows. Each statement
//! ends by announcing what changed with `pg_notify` (channels `hallwatch_alerts`,
//! `hallwatch_devices`, `hallwatch_snapshots`, `hallwatch_commands`; JSON payloads of ids).
//!
//! Alerts and commands are announced one notification per id: they are few and each matters.
//! Device health and snapshots are telemetry, announced once per batch and school, so the
//! notification queue (one per cluster) never becomes the ingest bottleneck.
//!
//! Current-state rows (`alerts`, `devices`) take the batch's latest record per id and
//! overwrite unconditionally. They used to compare seqs ("newest wins"), but seqs are not
//! comparable across epochs (a restored gateway counts again from an older number under a new
//! epoch), and there is no need: alert events travel only in the alert lane and device health
//! only in the telemetry lane, the merge skips every record at or below the lane's cursor, and
//! the cursor's row lock serialises a lane's batches, so whatever reaches these statements is
//! newer than anything merged before from that lane of that epoch. Across epochs the gateway
//! sends a lane's epochs in the order it wrote them.

use shared::ids::Seq;
use shared::sync::Lane;
use sqlx::PgConnection;

use super::columns::{AlertColumns, DroppedCounts, HealthColumns, ResultColumns, SnapshotColumns};

/// Where a batch's records come from: the gateway (and its school), the epoch and the lane.
#[derive(Debug, Clone, Copy)]
pub(super) struct Source<'a> {
    pub school: &'a str,
    pub gateway: &'a str,
    /// As stored (`Epoch::to_i64`).
    pub epoch: i64,
    pub lane: Lane,
}

/// Appends alert events and moves each alert to the state of its latest event in the batch.
pub(super) async fn merge_alerts(
    conn: &mut PgConnection,
    src: &Source<'_>,
    c: &AlertColumns,
) -> Result<(), sqlx::Error> {
    if c.seq.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH ev AS ( \
           SELECT * FROM UNNEST($3::bigint[], $4::bigint[], $5::uuid[], $6::text[], $7::text[], \
             $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
             $14::integer[]) \
           AS t(seq, at, alert_id, kind, severity, state, event, device_id, room, \
             actor_source, actor_name, press_count)), \
         appended AS ( \
           INSERT INTO alert_events (school_id, gateway_id, epoch, seq, alert_id, at, event, \
             state, severity, actor_source, actor_name) \
           SELECT $1, $2, $15, seq, alert_id, at, event, state, severity, actor_source, \
             actor_name \
           FROM ev ON CONFLICT DO NOTHING), \
         latest AS ( \
           SELECT DISTINCT ON (alert_id) *, min(at) OVER (PARTITION BY alert_id) AS first_at \
           FROM ev ORDER BY alert_id, seq DESC), \
         changed AS ( \
           INSERT INTO alerts (school_id, alert_id, gateway_id, kind, severity, state, \
             device_id, room, press_count, opened_at, updated_at, last_epoch, last_seq) \
           SELECT $1, alert_id, $2, kind, severity, state, device_id, room, press_count, \
             first_at, at, $15, seq FROM latest \
           ON CONFLICT (school_id, alert_id) DO UPDATE SET \
             gateway_id = EXCLUDED.gateway_id, severity = EXCLUDED.severity, \
             state = EXCLUDED.state, device_id = EXCLUDED.device_id, room = EXCLUDED.room, \
             press_count = EXCLUDED.press_count, updated_at = EXCLUDED.updated_at, \
             last_epoch = EXCLUDED.last_epoch, last_seq = EXCLUDED.last_seq \
           RETURNING alert_id) \
         SELECT count(pg_notify('hallwatch_alerts', \
           json_build_object('school_id', $1::text, 'alert_id', alert_id)::text)) FROM changed",
    )
    .bind(src.school)
    .bind(src.gateway)
    .bind(&c.seq)
    .bind(&c.at)
    .bind(&c.alert_id)
    .bind(&c.kind)
    .bind(&c.severity)
    .bind(&c.state)
    .bind(&c.event)
    .bind(&c.device_id)
    .bind(&c.room)
    .bind(&c.actor_source)
    .bind(&c.actor_name)
    .bind(&c.press_count)
    .bind(src.epoch)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves each reported device to its latest health in the batch.
pub(super) async fn merge_health(
    conn: &mut PgConnection,
    src: &Source<'_>,
    c: &HealthColumns,
) -> Result<(), sqlx::Error> {
    if c.seq.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH h AS ( \
           SELECT * FROM UNNEST($3::bigint[], $4::bigint[], $5::text[], $6::text[], \
             $7::integer[], $8::smallint[]) \
           AS t(seq, at, device_id, status, battery_mv, rssi_dbm)), \
         latest AS (SELECT DISTINCT ON (device_id) * FROM h ORDER BY device_id, seq DESC), \
         changed AS ( \
           INSERT INTO devices (school_id, device_id, gateway_id, status, battery_mv, \
             rssi_dbm, reported_at, last_epoch, last_seq) \
           SELECT $1, device_id, $2, status, battery_mv, rssi_dbm, at, $9, seq FROM latest \
           ON CONFLICT (school_id, device_id) DO UPDATE SET \
             gateway_id = EXCLUDED.gateway_id, status = EXCLUDED.status, \
             battery_mv = EXCLUDED.battery_mv, rssi_dbm = EXCLUDED.rssi_dbm, \
             reported_at = EXCLUDED.reported_at, last_epoch = EXCLUDED.last_epoch, \
             last_seq = EXCLUDED.last_seq \
           RETURNING 1) \
         SELECT pg_notify('hallwatch_devices', json_build_object('school_id', $1::text, \
           'changed', count(*))::text) FROM changed HAVING count(*) > 0",
    )
    .bind(src.school)
    .bind(src.gateway)
    .bind(&c.seq)
    .bind(&c.at)
    .bind(&c.device_id)
    .bind(&c.status)
    .bind(&c.battery_mv)
    .bind(&c.rssi_dbm)
    .bind(src.epoch)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends snapshots to the monthly partitions.
pub(super) async fn merge_snapshots(
    conn: &mut PgConnection,
    src: &Source<'_>,
    c: &SnapshotColumns,
) -> Result<(), sqlx::Error> {
    if c.seq.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH s AS ( \
           SELECT * FROM UNNEST($3::bigint[], $4::bigint[], $5::integer[], $6::integer[], \
             $7::integer[], $8::integer[], $9::integer[], $10::integer[], $11::integer[]) \
           AS t(seq, taken_ms, students_total, students_present, students_absent, \
             teachers_present, active_alerts, devices_online, devices_offline)), \
         added AS ( \
           INSERT INTO snapshots (school_id, gateway_id, epoch, seq, taken_at, \
             students_total, students_present, students_absent, teachers_present, \
             active_alerts, devices_online, devices_offline) \
           SELECT $1, $2, $12, seq, to_timestamp(taken_ms / 1000.0), students_total, \
             students_present, students_absent, teachers_present, active_alerts, \
             devices_online, devices_offline FROM s \
           ON CONFLICT DO NOTHING RETURNING seq) \
         SELECT pg_notify('hallwatch_snapshots', json_build_object('school_id', $1::text, \
           'seq', max(seq))::text) FROM added HAVING count(*) > 0",
    )
    .bind(src.school)
    .bind(src.gateway)
    .bind(&c.seq)
    .bind(&c.taken_at)
    .bind(&c.students_total)
    .bind(&c.students_present)
    .bind(&c.students_absent)
    .bind(&c.teachers_present)
    .bind(&c.active_alerts)
    .bind(&c.devices_online)
    .bind(&c.devices_offline)
    .bind(src.epoch)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the reported commands confirmed, so they are no longer delivered.
pub(super) async fn merge_results(
    conn: &mut PgConnection,
    src: &Source<'_>,
    c: &ResultColumns,
) -> Result<(), sqlx::Error> {
    if c.command_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH r AS (SELECT * FROM UNNEST($3::uuid[], $4::text[], $5::text[]) \
           AS t(command_id, outcome, reason)), \
         confirmed AS ( \
           UPDATE gateway_commands c SET confirmed_at = now(), outcome = r.outcome, \
             reason = r.reason \
           FROM r WHERE c.school_id = $1 AND c.gateway_id = $2 \
             AND c.command_id = r.command_id AND c.confirmed_at IS NULL \
           RETURNING c.command_id) \
         SELECT count(pg_notify('hallwatch_commands', \
           json_build_object('school_id', $1::text, 'command_id', command_id)::text)) \
         FROM confirmed",
    )
    .bind(src.school)
    .bind(src.gateway)
    .bind(&c.command_id)
    .bind(&c.outcome)
    .bind(&c.reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the cursor of the batch's epoch and lane to `seq` and adds the dropped counts.
pub(super) async fn advance_cursor(
    conn: &mut PgConnection,
    src: &Source<'_>,
    seq: Seq,
    dropped: &DroppedCounts,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sync_cursors SET last_seq = $5, last_sync_at = now(), \
           dropped_thinned = dropped_thinned + $6, \
           dropped_storage_budget = dropped_storage_budget + $7, \
           dropped_dead_lettered = dropped_dead_lettered + $8 \
         WHERE school_id = $1 AND gateway_id = $2 AND epoch = $3 AND lane = $4",
    )
    .bind(src.school)
    .bind(src.gateway)
    .bind(src.epoch)
    .bind(src.lane.as_str())
    .bind(i64::try_from(seq.get()).unwrap_or(i64::MAX))
    .bind(dropped.thinned)
    .bind(dropped.storage_budget)
    .bind(dropped.dead_lettered)
    .execute(conn)
    .await?;
    Ok(())
}
