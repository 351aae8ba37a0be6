//! What people read about the estate: regions, schools with their latest numbers, the rooms of
//! a school, its devices and its snapshot history. Every function takes the caller's
//! [`UserScope`] and runs under it, so row-level security bounds what any query can return.

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::ids::{RegionId, SchoolId};
use sqlx::{FromRow, PgPool};
use utoipa::ToSchema;

use super::{DbError, Filtered, Reach, UserScope, begin};

/// A region as a person sees it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Region {
    /// Its id.
    pub region_id: String,
    /// Its name.
    pub name: String,
    /// How many of its schools the caller sees.
    pub schools: i64,
}

/// The regions in scope: every region for a superadmin; otherwise the regions of the
/// caller's schools and the regions they administer (even while empty).
pub async fn regions(
    pool: &PgPool,
    scope: &UserScope,
    granted: &[RegionId],
    only: Option<&RegionId>,
) -> Result<Vec<Region>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let granted: Vec<&str> = granted.iter().map(RegionId::as_str).collect();
    // `schools` is under row-level security: the join sees only the caller's schools.
    let rows = sqlx::query_as(
        "SELECT r.region_id, r.name, count(s.school_id) AS schools \
         FROM regions r LEFT JOIN schools s ON s.region_id = r.region_id \
         WHERE ($3::text IS NULL OR r.region_id = $3) \
         GROUP BY r.region_id, r.name \
         HAVING $1 OR r.region_id = ANY($2) OR count(s.school_id) > 0 \
         ORDER BY r.region_id",
    )
    .bind(scope.reach == Reach::All)
    .bind(&granted)
    .bind(only.map(RegionId::as_str))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// True when a region with this id exists (whoever may see it).
pub async fn region_exists(pool: &PgPool, region: &RegionId) -> Result<bool, DbError> {
    // `regions` holds names only and is not under row-level security.
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM regions WHERE region_id = $1)")
            .bind(region.as_str())
            .fetch_one(pool)
            .await?,
    )
}

/// A school's numbers from its gateway's latest snapshot.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Headcount {
    /// When the gateway took it.
    pub taken_at: DateTime<Utc>,
    /// Students expected.
    pub students_total: i32,
    /// Students counted in.
    pub students_present: i32,
    /// Students not counted in.
    pub students_absent: i32,
    /// Teachers counted in.
    pub teachers_present: i32,
    /// Open alerts, as the gateway counted them.
    pub active_alerts: i32,
    /// Devices reporting.
    pub devices_online: i32,
    /// Devices silent.
    pub devices_offline: i32,
}

/// A school with what a dashboard tile shows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct School {
    /// Its id.
    pub school_id: String,
    /// Its region.
    pub region_id: String,
    /// Its name.
    pub name: String,
    /// Alerts not resolved or cancelled, as synced.
    pub open_alerts: i64,
    /// Enrolled gateways that synced recently.
    pub gateways_online: i64,
    /// Enrolled gateways marked offline (silent too long).
    pub gateways_offline: i64,
    /// Devices whose last report was `offline`.
    pub devices_offline: i64,
    /// The latest sync from any of its gateways.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The latest snapshot, if any arrived.
    pub latest: Option<Headcount>,
}

#[derive(FromRow)]
struct SchoolRow {
    school_id: String,
    region_id: String,
    name: String,
    open_alerts: i64,
    gateways_online: i64,
    gateways_offline: i64,
    devices_offline: i64,
    last_sync_at: Option<DateTime<Utc>>,
    taken_at: Option<DateTime<Utc>>,
    students_total: Option<i32>,
    students_present: Option<i32>,
    students_absent: Option<i32>,
    teachers_present: Option<i32>,
    active_alerts: Option<i32>,
    devices_online: Option<i32>,
    snapshot_devices_offline: Option<i32>,
}

impl From<SchoolRow> for School {
    fn from(row: SchoolRow) -> Self {
        let latest = row.taken_at.map(|taken_at| Headcount {
            taken_at,
            students_total: row.students_total.unwrap_or(0),
            students_present: row.students_present.unwrap_or(0),
            students_absent: row.students_absent.unwrap_or(0),
            teachers_present: row.teachers_present.unwrap_or(0),
            active_alerts: row.active_alerts.unwrap_or(0),
            devices_online: row.devices_online.unwrap_or(0),
            devices_offline: row.snapshot_devices_offline.unwrap_or(0),
        });
        Self {
            school_id: row.school_id,
            region_id: row.region_id,
            name: row.name,
            open_alerts: row.open_alerts,
            gateways_online: row.gateways_online,
            gateways_offline: row.gateways_offline,
            devices_offline: row.devices_offline,
            last_sync_at: row.last_sync_at,
            latest,
        }
    }
}

macro_rules! school_select {
    () => {
        "\
    SELECT s.school_id, s.region_id, s.name, \
      (SELECT count(*) FROM alerts a WHERE a.school_id = s.school_id \
         AND a.state IN ('triggered', 'escalated', 'acknowledged')) AS open_alerts, \
      (SELECT count(*) FROM gateways g WHERE g.school_id = s.school_id AND g.revoked_at IS NULL \
         AND g.last_sync_at IS NOT NULL AND g.offline_since IS NULL) AS gateways_online, \
      (SELECT count(*) FROM gateways g WHERE g.school_id = s.school_id AND g.revoked_at IS NULL \
         AND g.offline_since IS NOT NULL) AS gateways_offline, \
      (SELECT count(*) FROM devices d WHERE d.school_id = s.school_id \
         AND d.status = 'offline') AS devices_offline, \
      (SELECT max(g.last_sync_at) FROM gateways g WHERE g.school_id = s.school_id) AS last_sync_at, \
      snap.taken_at, snap.students_total, snap.students_present, snap.students_absent, \
      snap.teachers_present, snap.active_alerts, snap.devices_online, \
      snap.devices_offline AS snapshot_devices_offline \
    FROM schools s LEFT JOIN LATERAL ( \
      SELECT * FROM snapshots p WHERE p.school_id = s.school_id \
      ORDER BY p.taken_at DESC LIMIT 1) snap ON true "
    };
}

/// The schools in scope, by id, after `after`, at most `limit + 1` (see `api::page`).
pub async fn schools(
    pool: &PgPool,
    scope: &UserScope,
    region: Option<&RegionId>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<School>, DbError> {
    let mut query = Filtered::new(school_select!());
    if let Some(region) = region {
        query
            .and()
            .push("s.region_id = ")
            .push_bind(region.as_str());
    }
    if let Some(after) = after {
        query.and().push("s.school_id > ").push_bind(after);
    }
    query
        .then()
        .push(" ORDER BY s.school_id LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows: Vec<SchoolRow> = query.fetch_all(pool, scope).await?;
    Ok(rows.into_iter().map(School::from).collect())
}

/// A gateway of a school.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Gateway {
    /// Its id.
    pub gateway_id: String,
    /// When it enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// Its latest sync (`null` until its first).
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Set while it is offline: since when.
    pub offline_since: Option<DateTime<Utc>>,
    /// Set once its certificate was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A school with its gateways.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SchoolDetail {
    /// The school and its numbers.
    #[serde(flatten)]
    pub school: School,
    /// Its gateways.
    pub gateways: Vec<Gateway>,
}

/// One school in scope, `None` when the scope does not show it.
pub async fn school(
    pool: &PgPool,
    scope: &UserScope,
    school: &SchoolId,
) -> Result<Option<SchoolDetail>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let sql = concat!(school_select!(), " WHERE s.school_id = $1");
    let row: Option<SchoolRow> = sqlx::query_as(sql)
        .bind(school.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let gateways = sqlx::query_as(
        "SELECT gateway_id, enrolled_at, last_sync_at, offline_since, revoked_at \
         FROM gateways WHERE school_id = $1 ORDER BY gateway_id",
    )
    .bind(school.as_str())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(SchoolDetail {
        school: row.into(),
        gateways,
    }))
}

/// A room.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Room {
    /// Its id.
    pub room_id: uuid::Uuid,
    /// Its number on the door.
    pub room_number: String,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// How many people it holds.
    pub capacity: Option<i32>,
    #[serde(skip)]
    floor_id: uuid::Uuid,
}

/// A floor and its rooms.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Floor {
    /// Its id.
    pub floor_id: uuid::Uuid,
    /// 0 for the ground floor.
    pub floor_number: i32,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Its rooms, by number.
    pub rooms: Vec<Room>,
}

/// A building and its floors.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Building {
    /// Its id.
    pub building_id: uuid::Uuid,
    /// Its name.
    pub name: String,
    /// Its floors, lowest first.
    pub floors: Vec<Floor>,
}

/// The buildings, floors and rooms of a school in scope (empty when it has none or the scope
/// does not show it; the handler checks the school first).
pub async fn rooms(
    pool: &PgPool,
    scope: &UserScope,
    school: &SchoolId,
) -> Result<Vec<Building>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let buildings: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT building_id, name FROM buildings WHERE school_id = $1 ORDER BY name, building_id",
    )
    .bind(school.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let floors: Vec<(uuid::Uuid, uuid::Uuid, i32, Option<String>)> = sqlx::query_as(
        "SELECT floor_id, building_id, floor_number, name FROM floors WHERE school_id = $1 \
         ORDER BY floor_number, floor_id",
    )
    .bind(school.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let mut rooms: Vec<Room> = sqlx::query_as(
        "SELECT room_id, floor_id, room_number, name, capacity FROM rooms WHERE school_id = $1 \
         ORDER BY room_number, room_id",
    )
    .bind(school.as_str())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(buildings
        .into_iter()
        .map(|(building_id, name)| Building {
            building_id,
            name,
            floors: floors
                .iter()
                .filter(|f| f.1 == building_id)
                .map(|(floor_id, _, floor_number, name)| Floor {
                    floor_id: *floor_id,
                    floor_number: *floor_number,
                    name: name.clone(),
                    rooms: {
                        let (here, rest) = rooms.drain(..).partition(|r| r.floor_id == *floor_id);
                        rooms = rest;
                        here
                    },
                })
                .collect(),
        })
        .collect())
}

/// A device as its gateway last reported it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Device {
    /// Its id.
    pub device_id: String,
    /// The gateway it reports through.
    pub gateway_id: String,
    /// `online`, `offline`, `battery_low` or `fault`.
    pub status: String,
    /// Battery voltage, millivolts.
    pub battery_mv: Option<i32>,
    /// Signal strength, dBm.
    pub rssi_dbm: Option<i16>,
    /// When the gateway last heard from it.
    pub last_seen: DateTime<Utc>,
}

/// The devices of a school in scope, by id, after `after`, at most `limit + 1`.
pub async fn devices(
    pool: &PgPool,
    scope: &UserScope,
    school: &SchoolId,
    status: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Device>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let rows = sqlx::query_as(
        "SELECT device_id, gateway_id, status, battery_mv, rssi_dbm, \
           to_timestamp(reported_at / 1000.0) AS last_seen \
         FROM devices WHERE school_id = $1 AND ($2::text IS NULL OR status = $2) \
           AND ($3::text IS NULL OR device_id > $3) \
         ORDER BY device_id LIMIT $4",
    )
    .bind(school.as_str())
    .bind(status)
    .bind(after)
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// One snapshot of a school's numbers.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Snapshot {
    /// The gateway that took it.
    pub gateway_id: String,
    /// Its place in the gateway's telemetry.
    pub seq: i64,
    /// The numbers.
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub headcount: Headcount,
}

/// Where a snapshot page starts: after (taken_at, gateway, seq).
pub type SnapshotKey = (DateTime<Utc>, String, i64);

/// The snapshots of a school in scope taken in `[from, to)`, newest first, after `after`,
/// at most `limit + 1`.
pub async fn snapshots(
    pool: &PgPool,
    scope: &UserScope,
    school: &SchoolId,
    period: (DateTime<Utc>, DateTime<Utc>),
    after: Option<SnapshotKey>,
    limit: u32,
) -> Result<Vec<Snapshot>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let (at, gateway, seq) = match after {
        Some((at, gateway, seq)) => (Some(at), Some(gateway), Some(seq)),
        None => (None, None, None),
    };
    let rows = sqlx::query_as(
        "SELECT gateway_id, seq, taken_at, students_total, students_present, students_absent, \
           teachers_present, active_alerts, devices_online, devices_offline \
         FROM snapshots WHERE school_id = $1 AND taken_at >= $2 AND taken_at < $3 \
           AND ($4::timestamptz IS NULL OR (taken_at, gateway_id, seq) < ($4, $5, $6)) \
         ORDER BY taken_at DESC, gateway_id DESC, seq DESC LIMIT $7",
    )
    .bind(school.as_str())
    .bind(period.0)
    .bind(period.1)
    .bind(at)
    .bind(gateway)
    .bind(seq)
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}
