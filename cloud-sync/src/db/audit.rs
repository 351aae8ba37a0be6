//! The append-only audit log: who did what to which school, and whether it was allowed.

use serde_json::Value;
use shared::ids::SchoolId;
use sqlx::PgConnection;

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
pub async fn record(conn: &mut PgConnection, entry: &AuditEntry<'_>) -> Result<(), sqlx::Error> {
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
pub async fn record_alone(pool: &sqlx::PgPool, entry: &AuditEntry<'_>) -> Result<(), sqlx::Error> {
    let mut tx = match entry.school_id {
        Some(school) => super::begin(pool, super::Scope::School(school)).await?,
        None => super::begin(pool, super::Scope::Schools(&[])).await?,
    };
    record(&mut tx, entry).await?;
    tx.commit().await
}
