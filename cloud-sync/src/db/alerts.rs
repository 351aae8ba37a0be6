//! Alerts as people read them: lists with filters, one alert with its history, notes, and
//! statistics. Actions on alerts are commands to the gateway (`commands`): the cloud never
//! changes an alert's state itself.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use shared::ids::SchoolId;
use sqlx::{FromRow, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::{DbError, Filtered, UserScope, begin};

/// An alert as the school's gateway last reported it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Alert {
    /// Its id (made by the gateway).
    pub alert_id: Uuid,
    /// The school.
    pub school_id: String,
    /// The gateway that raised it.
    pub gateway_id: String,
    /// `panic`, `medical`, `fire`, `lockdown` or `intruder`.
    pub kind: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// `triggered`, `escalated`, `acknowledged`, `resolved` or `cancelled`, as the school
    /// confirmed it.
    pub state: String,
    /// The device pressed, if a device raised it.
    pub device_id: Option<String>,
    /// The room, if known.
    pub room: Option<String>,
    /// How many presses it gathered.
    pub press_count: i32,
    /// When it was raised (the gateway's clock).
    pub opened_at: DateTime<Utc>,
    /// Its latest change.
    pub updated_at: DateTime<Utc>,
    /// An action requested from the cloud that the school has not confirmed yet
    /// (`acknowledge`, `resolve`, `cancel`): the dashboard shows it as "requested".
    pub requested: Option<String>,
}

macro_rules! alert_select {
    () => {
        "\
    SELECT a.alert_id, a.school_id, a.gateway_id, a.kind, a.severity, a.state, a.device_id, \
      a.room, a.press_count, to_timestamp(a.opened_at / 1000.0) AS opened_at, \
      to_timestamp(a.updated_at / 1000.0) AS updated_at, \
      (SELECT c.kind FROM gateway_commands c WHERE c.school_id = a.school_id \
         AND c.alert_id = a.alert_id AND c.confirmed_at IS NULL \
         ORDER BY c.created_at DESC LIMIT 1) AS requested \
    FROM alerts a "
    };
}

/// Which alerts a list or an export wants.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// One state.
    pub state: Option<String>,
    /// One kind.
    pub kind: Option<String>,
    /// One school.
    pub school: Option<SchoolId>,
    /// Opened at or after.
    pub from: Option<DateTime<Utc>>,
    /// Opened before.
    pub to: Option<DateTime<Utc>>,
}

/// Where an alert page starts: after (opened_at in ms, alert id).
pub type AlertKey = (i64, Uuid);

/// Alerts in scope matching `filter`, newest first, after `after`, at most `limit` rows.
pub async fn list(
    pool: &PgPool,
    scope: &UserScope,
    filter: &AlertFilter,
    after: Option<AlertKey>,
    limit: u32,
) -> Result<Vec<Alert>, DbError> {
    let mut query = Filtered::new(alert_select!());
    if let Some(state) = &filter.state {
        query.and().push("a.state = ").push_bind(state.as_str());
    }
    if let Some(kind) = &filter.kind {
        query.and().push("a.kind = ").push_bind(kind.as_str());
    }
    if let Some(school) = &filter.school {
        query
            .and()
            .push("a.school_id = ")
            .push_bind(school.as_str());
    }
    if let Some(from) = filter.from {
        query
            .and()
            .push("a.opened_at >= ")
            .push_bind(first_millisecond(from));
    }
    if let Some(to) = filter.to {
        query
            .and()
            .push("a.opened_at < ")
            .push_bind(first_millisecond(to));
    }
    if let Some((at, id)) = after {
        let sql = query
            .and()
            .push("(a.opened_at, a.alert_id) < (")
            .push_bind(at);
        sql.push(", ").push_bind(id).push(")");
    }
    query
        .then()
        .push(" ORDER BY a.opened_at DESC, a.alert_id DESC LIMIT ")
        .push_bind(i64::from(limit));
    query.fetch_all(pool, scope).await
}

/// The first whole millisecond (`alerts.opened_at`'s unit) at or after `t`: an alert was opened
/// at or after `t` exactly when its millisecond is at or after this one.
fn first_millisecond(t: DateTime<Utc>) -> i64 {
    let micros = t.timestamp_micros();
    micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0)
}

/// The sort key of `alert` in [`list`].
pub fn key(alert: &Alert) -> AlertKey {
    (alert.opened_at.timestamp_millis(), alert.alert_id)
}

/// One event of an alert's history, as the gateway logged it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct AlertEvent {
    /// When it happened (the gateway's clock).
    pub at: DateTime<Utc>,
    /// `triggered`, `pressed`, `escalated`, `acknowledged`, `resolved`, `cancelled`.
    pub event: String,
    /// The state after it.
    pub state: String,
    /// The severity after it.
    pub severity: String,
    /// Who acted: `device`, `dashboard`, `cloud`, `system`, …
    pub actor_source: Option<String>,
    /// Their name or id, when known.
    pub actor_name: Option<String>,
}

/// A note someone added in the cloud.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Note {
    /// Its id.
    pub note_id: Uuid,
    /// `user:<id>` of its author.
    pub author: String,
    /// The author's email address.
    pub author_email: Option<String>,
    /// What they wrote.
    pub body: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An action requested from the cloud and what became of it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct Request {
    /// Its id (the gateway applies each once).
    pub command_id: Uuid,
    /// `acknowledge`, `resolve` or `cancel`.
    pub kind: String,
    /// `user:<id>` of who asked.
    pub requested_by: String,
    /// Their email address.
    pub requested_by_email: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When the school reported its outcome; `null` while it is on its way.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// `applied` or `rejected`, once confirmed.
    pub outcome: Option<String>,
    /// Why it was rejected.
    pub reason: Option<String>,
}

/// An alert with its history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertDetail {
    /// The alert.
    #[serde(flatten)]
    pub alert: Alert,
    /// Its events, oldest first.
    pub events: Vec<AlertEvent>,
    /// Notes, oldest first.
    pub notes: Vec<Note>,
    /// Actions requested from the cloud, oldest first.
    pub requests: Vec<Request>,
}

/// One alert in scope with its history; `None` when the scope shows no such alert.
pub async fn detail(
    pool: &PgPool,
    scope: &UserScope,
    alert: Uuid,
) -> Result<Option<AlertDetail>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let sql = concat!(alert_select!(), " WHERE a.alert_id = $1");
    let Some(row): Option<Alert> = sqlx::query_as(sql)
        .bind(alert)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    let events = sqlx::query_as(
        "SELECT to_timestamp(at / 1000.0) AS at, event, state, severity, actor_source, actor_name \
         FROM alert_events WHERE school_id = $1 AND alert_id = $2 ORDER BY at, seq",
    )
    .bind(&row.school_id)
    .bind(alert)
    .fetch_all(&mut *tx)
    .await?;
    let notes = sqlx::query_as(concat!(
        "SELECT note_id, author, ",
        actor_email!("author"),
        " AS author_email, body, created_at FROM alert_notes \
         WHERE school_id = $1 AND alert_id = $2 ORDER BY created_at, note_id"
    ))
    .bind(&row.school_id)
    .bind(alert)
    .fetch_all(&mut *tx)
    .await?;
    let requests = sqlx::query_as(concat!(
        "SELECT command_id, kind, requested_by, ",
        actor_email!("requested_by"),
        " AS requested_by_email, created_at, confirmed_at, outcome, reason \
         FROM gateway_commands WHERE school_id = $1 AND alert_id = $2 \
         ORDER BY created_at, command_id"
    ))
    .bind(&row.school_id)
    .bind(alert)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(AlertDetail {
        alert: row,
        events,
        notes,
        requests,
    }))
}

/// The school of an alert in any scope. Only for auditing a scope refusal: the caller is
/// answered 404 whatever this says.
pub async fn school_of(pool: &PgPool, alert: Uuid) -> Result<Option<String>, DbError> {
    Ok(sqlx::query_scalar("SELECT hallwatch_alert_school($1)")
        .bind(alert)
        .fetch_one(pool)
        .await?)
}

/// Adds a note to an alert in scope, audited; `None` when the scope shows no such alert.
pub async fn add_note(
    pool: &PgPool,
    scope: &UserScope,
    alert: Uuid,
    author: &str,
    body: &str,
) -> Result<Option<Note>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let note: Option<(String, Note)> = sqlx::query_as::<
        _,
        (String, Uuid, String, Option<String>, String, DateTime<Utc>),
    >(concat!(
        "INSERT INTO alert_notes (school_id, alert_id, note_id, author, body) \
             SELECT school_id, alert_id, $2, $3, $4 FROM alerts WHERE alert_id = $1 \
             RETURNING school_id, note_id, author, ",
        actor_email!("author"),
        ", body, created_at"
    ))
    .bind(alert)
    .bind(Uuid::now_v7())
    .bind(author)
    .bind(body)
    .fetch_optional(&mut *tx)
    .await?
    .map(
        |(school, note_id, author, author_email, body, created_at)| {
            (
                school,
                Note {
                    note_id,
                    author,
                    author_email,
                    body,
                    created_at,
                },
            )
        },
    );
    let Some((school, note)) = note else {
        return Ok(None);
    };
    let school: SchoolId = school
        .parse()
        .map_err(|e| DbError::Invalid(format!("school id: {e}")))?;
    let entry = AuditEntry {
        school_id: Some(&school),
        actor: author.to_owned(),
        action: "add_alert_note",
        outcome: "ok",
        detail: json!({ "alert_id": alert, "note_id": note.note_id }),
    };
    audit::record(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(Some(note))
}

/// The school of an open alert in scope, and whether it is open; `None` when the scope
/// shows no such alert.
pub async fn state_of(
    pool: &PgPool,
    scope: &UserScope,
    alert: Uuid,
) -> Result<Option<(SchoolId, String)>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT school_id, state FROM alerts WHERE alert_id = $1")
            .bind(alert)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    row.map(|(school, state)| {
        school
            .parse()
            .map(|school| (school, state))
            .map_err(|e| DbError::Invalid(format!("school id: {e}")))
    })
    .transpose()
}

/// A school's alerts over a period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SchoolStatistics {
    /// The school.
    pub school_id: String,
    /// Alerts opened in the period.
    pub total: i64,
    /// Of those, per kind.
    pub by_kind: std::collections::BTreeMap<String, i64>,
    /// Of those, per current state.
    pub by_state: std::collections::BTreeMap<String, i64>,
    /// Median seconds from opening to the first acknowledgement, of those acknowledged.
    pub median_seconds_to_acknowledge: Option<f64>,
    /// Median seconds from opening to resolution, of those resolved.
    pub median_seconds_to_resolve: Option<f64>,
}

/// Alert statistics per school in scope (only schools with alerts in the period), for
/// alerts opened in `[from, to)`.
pub async fn statistics(
    pool: &PgPool,
    scope: &UserScope,
    school: Option<&SchoolId>,
    period: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<SchoolStatistics>, DbError> {
    // One pass over the period's alerts: a row per (school, kind, state) with its count, and
    // a row per school (kind and state NULL) with the medians, each alert's first
    // acknowledgement and resolution found through the events' index.
    let mut query = Filtered::new(
        "SELECT a.school_id, a.kind, a.state, count(*), \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY ack.at - a.opened_at) / 1000.0, \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY res.at - a.opened_at) / 1000.0 \
         FROM alerts a \
         LEFT JOIN LATERAL (SELECT min(e.at) AS at FROM alert_events e \
           WHERE e.school_id = a.school_id AND e.alert_id = a.alert_id \
             AND e.event = 'acknowledged') ack ON true \
         LEFT JOIN LATERAL (SELECT min(e.at) AS at FROM alert_events e \
           WHERE e.school_id = a.school_id AND e.alert_id = a.alert_id \
             AND e.event = 'resolved') res ON true",
    );
    query
        .and()
        .push("a.opened_at >= ")
        .push_bind(first_millisecond(period.0));
    query
        .and()
        .push("a.opened_at < ")
        .push_bind(first_millisecond(period.1));
    if let Some(school) = school {
        query
            .and()
            .push("a.school_id = ")
            .push_bind(school.as_str());
    }
    query.then().push(
        " GROUP BY GROUPING SETS ((a.school_id), (a.school_id, a.kind, a.state)) \
         ORDER BY a.school_id, a.kind NULLS FIRST, a.state",
    );
    type Row = (
        String,
        Option<String>,
        Option<String>,
        i64,
        Option<f64>,
        Option<f64>,
    );
    let rows: Vec<Row> = query.fetch_all(pool, scope).await?;

    let mut out: Vec<SchoolStatistics> = Vec::new();
    for (school_id, kind, state, n, ack, res) in rows {
        let (Some(kind), Some(state)) = (kind, state) else {
            // The school's row comes first (`NULLS FIRST`).
            out.push(SchoolStatistics {
                school_id,
                total: n,
                by_kind: Default::default(),
                by_state: Default::default(),
                median_seconds_to_acknowledge: ack,
                median_seconds_to_resolve: res,
            });
            continue;
        };
        let current = out
            .last_mut()
            .filter(|s| s.school_id == school_id)
            .ok_or_else(|| DbError::Invalid(format!("statistics of {school_id} out of order")))?;
        *current.by_kind.entry(kind).or_default() += n;
        *current.by_state.entry(state).or_default() += n;
    }
    Ok(out)
}
