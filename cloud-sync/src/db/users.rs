//! Managing people within a scope: who holds a grant in the caller's schools, adding a user
//! with a grant there, and disabling an account. `role_grants` is under row-level security,
//! so a caller sees (and can write) only the grants at their schools; a region grant (no
//! school) only a superadmin.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use shared::ids::SchoolId;
use sqlx::{FromRow, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::{DbError, UserScope, begin, is_foreign_key_violation, is_unique_violation};
use crate::auth::{Email, Grant, PasswordHash};

/// A grant as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GrantView {
    /// `superadmin`, `region_admin`, `school_admin` or `viewer`.
    pub role: String,
    /// For a region admin.
    pub region_id: Option<String>,
    /// For a school admin or viewer.
    pub school_id: Option<String>,
}

/// A person, with the grants the caller can see.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    /// Their id.
    pub user_id: Uuid,
    /// Their address.
    pub email: String,
    /// Set when the account was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
    /// Their grants within the caller's scope.
    pub grants: Vec<GrantView>,
}

#[derive(FromRow)]
struct UserRow {
    user_id: Uuid,
    email: String,
    disabled_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    roles: Vec<String>,
    regions: Vec<Option<String>>,
    schools: Vec<Option<String>>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        let grants = row
            .roles
            .into_iter()
            .zip(row.regions)
            .zip(row.schools)
            .map(|((role, region_id), school_id)| GrantView {
                role,
                region_id,
                school_id,
            })
            .collect();
        Self {
            user_id: row.user_id,
            email: row.email,
            disabled_at: row.disabled_at,
            created_at: row.created_at,
            grants,
        }
    }
}

// `role_grants` is filtered by row-level security: the join keeps users with at least one
// grant the caller may see, and only those grants.
macro_rules! user_select {
    () => {
        "\
    SELECT u.user_id, u.email, u.disabled_at, u.created_at, \
      array_agg(g.role ORDER BY g.role, g.region_id, g.school_id) AS roles, \
      array_agg(g.region_id ORDER BY g.role, g.region_id, g.school_id) AS regions, \
      array_agg(g.school_id ORDER BY g.role, g.region_id, g.school_id) AS schools \
    FROM users u JOIN role_grants g ON g.user_id = u.user_id "
    };
}

/// Users holding a grant in scope (optionally at one school), by address, after `after`,
/// at most `limit + 1`.
pub async fn list(
    pool: &PgPool,
    scope: &UserScope,
    school: Option<&SchoolId>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<User>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let sql = concat!(
        user_select!(),
        " WHERE ($1::text IS NULL OR g.school_id = $1) \
           AND ($2::text IS NULL OR u.email > $2) \
         GROUP BY u.user_id ORDER BY u.email LIMIT $3"
    );
    let rows: Vec<UserRow> = sqlx::query_as(sql)
        .bind(school.map(SchoolId::as_str))
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(User::from).collect())
}

/// A user holding a grant in scope, with how many grants they hold in all (in any scope);
/// `None` when the scope shows none of their grants.
pub async fn get(
    pool: &PgPool,
    scope: &UserScope,
    user: Uuid,
) -> Result<Option<(User, i64)>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let sql = concat!(user_select!(), " WHERE u.user_id = $1 GROUP BY u.user_id");
    let row: Option<UserRow> = sqlx::query_as(sql)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let total: i64 = sqlx::query_scalar("SELECT hallwatch_user_grant_count($1)")
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some((row.into(), total)))
}

/// Creates a user with one grant, within `scope` (row-level security refuses a grant
/// outside it), audited as `actor`. Returns the new user's id.
pub async fn create(
    pool: &PgPool,
    scope: impl super::TenantScope,
    actor: &str,
    email: &Email,
    password_hash: &PasswordHash,
    grant: &Grant,
) -> Result<Uuid, DbError> {
    let user_id = Uuid::now_v7();
    let mut tx = begin(pool, scope).await?;
    let inserted =
        sqlx::query("INSERT INTO users (user_id, email, password_hash) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(email.as_str())
            .bind(password_hash.as_str())
            .execute(&mut *tx)
            .await;
    match inserted {
        Err(err) if is_unique_violation(&err) => {
            return Err(DbError::Conflict(format!("a user {email} exists already")));
        }
        other => other?,
    };
    let granted = sqlx::query(
        "INSERT INTO role_grants (user_id, role, region_id, school_id) VALUES ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(grant.role().as_str())
    .bind(grant.region().map(|r| r.as_str()))
    .bind(grant.school().map(SchoolId::as_str))
    .execute(&mut *tx)
    .await;
    match granted {
        Err(err) if is_foreign_key_violation(&err) => {
            return Err(DbError::NotFound(match (grant.region(), grant.school()) {
                (Some(region), _) => format!("no region {region}"),
                (_, Some(school)) => format!("no school {school}"),
                _ => "the grant's region or school does not exist".to_owned(),
            }));
        }
        other => other?,
    };
    let entry = AuditEntry {
        school_id: grant.school(),
        actor: actor.to_owned(),
        action: "create_user",
        outcome: "ok",
        detail: json!({
            "user_id": user_id,
            "email": email.as_str(),
            "role": grant.role().as_str(),
            "region_id": grant.region().map(|r| r.as_str()),
        }),
    };
    audit::record(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(user_id)
}

/// Disables `user` (who must hold a grant in scope; the caller checked) and revokes their
/// refresh tokens: their access tokens stop working at the next request. Idempotent.
/// Audited at each school of their grants the caller sees.
pub async fn disable(
    pool: &PgPool,
    scope: &UserScope,
    actor: &str,
    user: &User,
) -> Result<(), DbError> {
    let mut tx = begin(pool, scope).await?;
    sqlx::query("UPDATE users SET disabled_at = now() WHERE user_id = $1 AND disabled_at IS NULL")
        .bind(user.user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user.user_id)
    .execute(&mut *tx)
    .await?;
    let mut schools: Vec<SchoolId> = Vec::new();
    for grant in &user.grants {
        if let Some(school) = &grant.school_id {
            schools.push(
                school
                    .parse()
                    .map_err(|e| DbError::Invalid(format!("school id: {e}")))?,
            );
        }
    }
    schools.dedup();
    let detail = json!({ "user_id": user.user_id, "email": user.email });
    if schools.is_empty() {
        let entry = AuditEntry {
            school_id: None,
            actor: actor.to_owned(),
            action: "disable_user",
            outcome: "ok",
            detail: detail.clone(),
        };
        audit::record(&mut tx, &entry).await?;
    }
    for school in &schools {
        let entry = AuditEntry {
            school_id: Some(school),
            actor: actor.to_owned(),
            action: "disable_user",
            outcome: "ok",
            detail: detail.clone(),
        };
        audit::record(&mut tx, &entry).await?;
    }
    tx.commit().await?;
    Ok(())
}
