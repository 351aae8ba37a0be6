//! The append-only audit log: who did what to which school, and whether it was allowed.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use shared::ids::SchoolId;
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use super::{DbError, Filtered, UserScope};

/// One audit entry.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// The school concerned, if any.
    pub school_id: Option<&'a SchoolId>,
    /// Who acted: `gateway:<id>`, `admin-cli`, `enroll`, later `user:<id>`.
    pub actor: String,
    /// What was attempted, e.g. `sync`, `enroll`, `create_school`.
    pub action: &'static str,
    /// `ok` or why it was refused, e.g. `forbidden`, `token_expired`.
    pub outcome: &'static str,
    /// Anything else worth keeping (small).
    pub detail: Value,
}

/// Appends `entry` in the caller's transaction.
pub(super) async fn record(
    conn: &mut PgConnection,
    entry: &AuditEntry<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (school_id, actor, action, outcome, detail) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(entry.school_id.map(SchoolId::as_str))
    .bind(&entry.actor)
    .bind(entry.action)
    .bind(entry.outcome)
    .bind(&entry.detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends `entry` in a transaction of its own, scoped to the entry's school.
pub async fn record_alone(pool: &sqlx::PgPool, entry: &AuditEntry<'_>) -> Result<(), DbError> {
    let mut tx = match entry.school_id {
        Some(school) => super::begin(pool, super::Scope::School(school)).await?,
        None => super::begin(pool, super::Scope::Schools(&[])).await?,
    };
    record(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(())
}

/// An audit entry as people read it.
#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct AuditRecord {
    /// Its number; later entries have larger ones.
    pub audit_id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// The school concerned; `null` for platform entries (superadmins only).
    pub school_id: Option<String>,
    /// `user:<id>`, `gateway:<id>`, `admin-cli`, …
    pub actor: String,
    /// The email address of the person `actor` names; `null` for other actors.
    pub actor_email: Option<String>,
    /// What was attempted.
    pub action: String,
    /// `ok` or why it was refused.
    pub outcome: String,
    /// The particulars.
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// Which entries an audit read wants.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// One school.
    pub school: Option<SchoolId>,
    /// One action.
    pub action: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
}

/// Audit entries in scope, newest first, before `after`, at most `limit + 1`. Platform
/// entries (no school) are in a superadmin's scope only.
pub async fn list(
    pool: &sqlx::PgPool,
    scope: &UserScope,
    filter: &AuditFilter,
    after: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditRecord>, DbError> {
    let mut query = Filtered::new(concat!(
        "SELECT audit_id, at, school_id, actor, ",
        actor_email!("actor"),
        " AS actor_email, action, outcome, detail FROM audit_log"
    ));
    if let Some(school) = &filter.school {
        query.and().push("school_id = ").push_bind(school.as_str());
    }
    if let Some(action) = &filter.action {
        query.and().push("action = ").push_bind(action.as_str());
    }
    if let Some(from) = filter.from {
        query.and().push("at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.and().push("at < ").push_bind(to);
    }
    if let Some(after) = after {
        query.and().push("audit_id < ").push_bind(after);
    }
    query
        .then()
        .push(" ORDER BY audit_id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    query.fetch_all(pool, scope).await
}
