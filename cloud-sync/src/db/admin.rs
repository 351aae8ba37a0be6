//! Platform upkeep run by `cloud-sync admin` and the service: regions, schools with their
//! enrollment tokens, and snapshot partitions. Runs with [`Scope::AllSchools`].

use std::time::Duration;

use serde_json::json;
use shared::ids::{RegionId, SchoolId};
use sqlx::PgPool;

use super::audit::{self, AuditEntry};
use super::{DbError, Scope, begin, is_foreign_key_violation, is_unique_violation};
use crate::pki::EnrollmentToken;

/// Who the admin commands audit as.
const ADMIN_ACTOR: &str = "admin-cli";

/// Creates a region.
pub async fn create_region(pool: &PgPool, id: &RegionId, name: &str) -> Result<(), DbError> {
    let mut tx = begin(pool, Scope::AllSchools).await?;
    let inserted = sqlx::query("INSERT INTO regions (region_id, name) VALUES ($1, $2)")
        .bind(id.as_str())
        .bind(name)
        .execute(&mut *tx)
        .await;
    match inserted {
        Err(err) if is_unique_violation(&err) => {
            return Err(DbError::Conflict(format!("region {id} exists already")));
        }
        other => other?,
    };
    let entry = AuditEntry {
        school_id: None,
        actor: ADMIN_ACTOR.to_owned(),
        action: "create_region",
        outcome: "ok",
        detail: json!({ "region_id": id.as_str(), "name": name }),
    };
    audit::record(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(())
}

/// Creates a school in `region` and a one-time enrollment token for its gateway, valid for
/// `token_ttl`. Returns the token; only its hash is stored.
pub async fn create_school(
    pool: &PgPool,
    region: &RegionId,
    id: &SchoolId,
    name: &str,
    token_ttl: Duration,
) -> Result<EnrollmentToken, DbError> {
    let mut tx = begin(pool, Scope::AllSchools).await?;
    let inserted =
        sqlx::query("INSERT INTO schools (school_id, region_id, name) VALUES ($1, $2, $3)")
            .bind(id.as_str())
            .bind(region.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await;
    match inserted {
        Err(err) if is_unique_violation(&err) => {
            return Err(DbError::Conflict(format!("school {id} exists already")));
        }
        Err(err) if is_foreign_key_violation(&err) => {
            return Err(DbError::NotFound(format!("no region {region}")));
        }
        other => other?,
    };
    let token = issue_token(&mut tx, id, token_ttl).await?;
    let entry = AuditEntry {
        school_id: Some(id),
        actor: ADMIN_ACTOR.to_owned(),
        action: "create_school",
        outcome: "ok",
        detail: json!({ "region_id": region.as_str(), "name": name }),
    };
    audit::record(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(token)
}

/// Issues another enrollment token for an existing school (a replaced gateway, or an expired
/// first token).
pub async fn create_enrollment_token(
    pool: &PgPool,
    school: &SchoolId,
    token_ttl: Duration,
) -> Result<EnrollmentToken, DbError> {
    let mut tx = begin(pool, Scope::AllSchools).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM schools WHERE school_id = $1")
        .bind(school.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(DbError::NotFound(format!("no school {school}")));
    }
    let token = issue_token(&mut tx, school, token_ttl).await?;
    let entry = AuditEntry {
        school_id: Some(school),
        actor: ADMIN_ACTOR.to_owned(),
        action: "create_enrollment_token",
        outcome: "ok",
        detail: json!({ "ttl_secs": token_ttl.as_secs() }),
    };
    audit::record(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(token)
}

async fn issue_token(
    conn: &mut sqlx::PgConnection,
    school: &SchoolId,
    ttl: Duration,
) -> Result<EnrollmentToken, DbError> {
    let token = EnrollmentToken::generate()?;
    sqlx::query(
        "INSERT INTO enrollment_tokens (school_id, token_hash, expires_at) \
         VALUES ($1, $2, now() + make_interval(secs => $3))",
    )
    .bind(school.as_str())
    .bind(token.hash().0.as_slice())
    .bind(ttl.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(token)
}

/// Creates the snapshot partitions for this month and `months_ahead` more; returns how many
/// were new.
pub async fn ensure_snapshot_partitions(pool: &PgPool, months_ahead: i32) -> Result<i32, DbError> {
    Ok(
        sqlx::query_scalar("SELECT hallwatch_ensure_snapshot_partitions($1)")
            .bind(months_ahead)
            .fetch_one(pool)
            .await?,
    )
}

/// Drops snapshot months older than `keep_months` full months; returns how many.
pub async fn prune_snapshots(pool: &PgPool, keep_months: i32) -> Result<i32, DbError> {
    Ok(sqlx::query_scalar("SELECT hallwatch_prune_snapshots($1)")
        .bind(keep_months)
        .fetch_one(pool)
        .await?)
}
