//! People's accounts: creating a user with a grant, the login lookup, a caller's grants and
//! scope, and refresh-token families (login starts one, each refresh spends a token and
//! issues the next, reuse of a spent token or a logout revokes the family).
//!
//! `users` and `refresh_tokens` are read before any scope exists (the e-mail address or the
//! refresh token is the only thing a request has), so they are outside row-level security.
//! A user's own grants are read with `hallwatch.user_id` set, which `role_grants`' policy
//! allows; a region admin's schools come from `hallwatch_region_schools`, which answers
//! school ids only.

use std::time::Duration;

use serde_json::{Value, json};
use shared::ids::SchoolId;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::{DbError, Reach, Scope, UserScope, begin};
use crate::auth::{Email, Grant, PasswordHash, Role};
use crate::pki::TokenHash;

/// Who the admin commands audit as.
const ADMIN_ACTOR: &str = "admin-cli";

/// Creates a user with one grant (run as the schema owner by `cloud-sync admin
/// create-user`). Returns the new user's id.
pub async fn create_user(
    pool: &PgPool,
    email: &Email,
    password_hash: &PasswordHash,
    grant: &Grant,
) -> Result<Uuid, DbError> {
    super::users::create(
        pool,
        Scope::AllSchools,
        ADMIN_ACTOR,
        email,
        password_hash,
        grant,
    )
    .await
}

/// What login needs to know about an address.
#[derive(Debug, Clone)]
pub struct LoginUser {
    /// The user.
    pub user_id: Uuid,
    /// Their password hash.
    pub password_hash: PasswordHash,
    /// True when the account is disabled.
    pub disabled: bool,
    /// The sealed TOTP secret when the second factor is active (login then needs a code).
    pub totp: Option<Vec<u8>>,
}

/// The user with this address, if any.
pub async fn find_login(pool: &PgPool, email: &Email) -> Result<Option<LoginUser>, DbError> {
    let mut tx = begin(pool, Scope::Schools(&[])).await?;
    let row: Option<(Uuid, String, bool, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT user_id, password_hash, disabled_at IS NOT NULL, \
                CASE WHEN totp_enabled_at IS NOT NULL THEN totp_secret END \
         FROM users WHERE email = $1",
    )
    .bind(email.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(|(user_id, hash, disabled, totp)| LoginUser {
        user_id,
        password_hash: PasswordHash::from_stored(hash),
        disabled,
        totp,
    }))
}

/// Starts a session after a successful login: a new refresh-token family whose first token
/// hashes to `token`, and the login's audit row, in one transaction.
pub async fn start_session(
    pool: &PgPool,
    user_id: Uuid,
    token: &TokenHash,
    ttl: Duration,
    detail: Value,
) -> Result<(), DbError> {
    let mut tx = begin(pool, Scope::Schools(&[])).await?;
    insert_token(&mut tx, token, Uuid::now_v7(), user_id, ttl).await?;
    let entry = AuditEntry {
        school_id: None,
        actor: user_actor(user_id),
        action: "login",
        outcome: "ok",
        detail,
    };
    audit::record(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(())
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The token was spent and the next one (the hash passed in) issued in its family.
    Rotated {
        /// Whose session it is.
        user_id: Uuid,
    },
    /// No such token (never issued, or pruned after it expired).
    Unknown,
    /// The token's time ran out.
    Expired,
    /// The token's family was revoked (a logout, an earlier reuse, a disabled user).
    Revoked,
    /// The token had been spent already: it was copied. The family is now revoked.
    Reused {
        /// Whose session it was.
        user_id: Uuid,
    },
    /// The user is disabled; the family is now revoked.
    Disabled,
}

/// Spends the refresh token that hashes to `presented` and issues `next` in its family, or
/// says why not. Reuse and disabled users revoke the family; both are audited. The token's
/// row is locked, so two refreshes with one token are one rotation and one reuse.
pub async fn refresh(
    pool: &PgPool,
    presented: &TokenHash,
    next: &TokenHash,
    ttl: Duration,
) -> Result<Refreshed, DbError> {
    let mut tx = begin(pool, Scope::Schools(&[])).await?;
    let row: Option<(Uuid, Uuid, bool, bool, bool, bool)> = sqlx::query_as(
        "SELECT t.family_id, t.user_id, t.revoked_at IS NOT NULL, t.used_at IS NOT NULL, \
                t.expires_at <= now(), u.disabled_at IS NOT NULL \
         FROM refresh_tokens t JOIN users u USING (user_id) \
         WHERE t.token_hash = $1 FOR UPDATE OF t",
    )
    .bind(presented.0.as_slice())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((family, user_id, revoked, used, expired, disabled)) = row else {
        return Ok(Refreshed::Unknown);
    };
    let outcome = if revoked {
        Refreshed::Revoked
    } else if used {
        revoke_family(&mut tx, family).await?;
        audit_session(&mut tx, user_id, "refresh_reuse", "family_revoked", family).await?;
        Refreshed::Reused { user_id }
    } else if expired {
        Refreshed::Expired
    } else if disabled {
        revoke_family(&mut tx, family).await?;
        audit_session(&mut tx, user_id, "refresh", "disabled", family).await?;
        Refreshed::Disabled
    } else {
        sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
            .bind(presented.0.as_slice())
            .execute(&mut *tx)
            .await?;
        insert_token(&mut tx, next, family, user_id, ttl).await?;
        Refreshed::Rotated { user_id }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Revokes the family of the refresh token that hashes to `presented` (a logout) and
/// audits it. Returns the user whose session ended, or `None` for an unknown token.
pub async fn logout(pool: &PgPool, presented: &TokenHash) -> Result<Option<Uuid>, DbError> {
    let mut tx = begin(pool, Scope::Schools(&[])).await?;
    let row: Option<(Uuid, Uuid)> =
        sqlx::query_as("SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(presented.0.as_slice())
            .fetch_optional(&mut *tx)
            .await?;
    let Some((family, user_id)) = row else {
        return Ok(None);
    };
    revoke_family(&mut tx, family).await?;
    audit_session(&mut tx, user_id, "logout", "ok", family).await?;
    tx.commit().await?;
    Ok(Some(user_id))
}

/// A caller as each request sees them: who, what they were granted, and the scope that
/// follows.
#[derive(Debug, Clone)]
pub struct CallerRecord {
    /// Their address.
    pub email: Email,
    /// Their grants, sorted.
    pub grants: Vec<Grant>,
    /// The scope their requests run in.
    pub scope: UserScope,
}

/// A user joined with one of their grants: email, disabled, and the grant's role, region and
/// school (all `NULL` for a user without grants).
type CallerRow = (String, bool, Option<String>, Option<String>, Option<String>);

/// The user `user_id` with their grants and scope, or `None` when the user does not exist
/// or is disabled (their access tokens stop working at once, not when they expire).
///
/// The scope: every school for a superadmin grant; otherwise the schools of their region
/// admin grants and the schools of their school grants. Read-only when any grant is a
/// viewer's: one transaction has one mode, and the narrower wins (`create-user` gives each
/// user one grant, so this only matters for grants written by hand).
pub async fn load_caller(pool: &PgPool, user_id: Uuid) -> Result<Option<CallerRecord>, DbError> {
    // Every request of a person starts here, so it is kept to one statement after the
    // scope: the grants are read in the same statement as the user (a LEFT JOIN, one row per
    // grant), `role_grants`' policy admitting them by `hallwatch.user_id`, which is set
    // with the (empty) scope before. Each round trip saved here is one per API request.
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT set_config('hallwatch.school_ids', '', true), \
                set_config('hallwatch.all_schools', 'off', true), \
                set_config('hallwatch.user_id', $1, true)",
    )
    .bind(user_id.to_string())
    .execute(&mut *tx)
    .await?;
    let rows: Vec<CallerRow> = sqlx::query_as(
        "SELECT u.email, u.disabled_at IS NOT NULL, g.role, g.region_id, g.school_id \
             FROM users u LEFT JOIN role_grants g ON g.user_id = u.user_id \
             WHERE u.user_id = $1",
    )
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    let Some((email, false, ..)) = rows.first().cloned() else {
        return Ok(None);
    };
    let email: Email = email
        .parse()
        .map_err(|e| DbError::Invalid(format!("user {user_id}: {e}")))?;
    let mut grants = Vec::with_capacity(rows.len());
    for (_, _, role, region, school) in rows {
        let Some(role) = role else {
            continue; // A user without grants: the LEFT JOIN's one row.
        };
        let invalid =
            |e: &dyn std::fmt::Display| DbError::Invalid(format!("grant of {user_id}: {e}"));
        let role: Role = role.parse().map_err(|e| invalid(&e))?;
        let region = region
            .map(|r| r.parse())
            .transpose()
            .map_err(|e| invalid(&e))?;
        let school = school
            .map(|s| s.parse())
            .transpose()
            .map_err(|e| invalid(&e))?;
        grants.push(Grant::new(role, region, school).map_err(|e| invalid(&e))?);
    }
    grants.sort();

    let read_only = grants.iter().any(|g| g.role() == Role::Viewer);
    let reach = if grants.contains(&Grant::Superadmin) {
        Reach::All
    } else {
        let regions: Vec<&str> = grants
            .iter()
            .filter_map(|g| g.region())
            .map(|r| r.as_str())
            .collect();
        let mut schools: Vec<SchoolId> = grants.iter().filter_map(Grant::school).cloned().collect();
        if !regions.is_empty() {
            let ids: Vec<String> = sqlx::query_scalar("SELECT hallwatch_region_schools($1)")
                .bind(&regions)
                .fetch_all(&mut *tx)
                .await?;
            for id in ids {
                schools.push(
                    id.parse()
                        .map_err(|e| DbError::Invalid(format!("school id: {e}")))?,
                );
            }
        }
        schools.sort();
        schools.dedup();
        Reach::Schools(schools)
    };
    tx.commit().await?;
    Ok(Some(CallerRecord {
        email,
        grants,
        scope: UserScope { reach, read_only },
    }))
}

/// The ids of the schools `scope` covers, read under that scope (so row-level security
/// answers, not this function).
pub async fn schools_in_scope(pool: &PgPool, scope: &UserScope) -> Result<Vec<SchoolId>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let ids: Vec<String> = sqlx::query_scalar("SELECT school_id FROM schools ORDER BY school_id")
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    ids.into_iter()
        .map(|id| {
            id.parse()
                .map_err(|e| DbError::Invalid(format!("school id: {e}")))
        })
        .collect()
}

/// Deletes refresh tokens that expired over a day ago (`admin prune`, daily); returns how
/// many. A deleted token presented again is unknown rather than reused, which changes
/// nothing: expired, it could not be spent anyway.
pub async fn prune_refresh_tokens(pool: &PgPool) -> Result<u64, DbError> {
    let mut tx = begin(pool, Scope::AllSchools).await?;
    let deleted =
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < now() - interval '1 day'")
            .execute(&mut *tx)
            .await?
            .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

/// `user:<id>`, the audit actor for a person.
pub fn user_actor(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

async fn insert_token(
    conn: &mut PgConnection,
    token: &TokenHash,
    family: Uuid,
    user_id: Uuid,
    ttl: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(token.0.as_slice())
    .bind(family)
    .bind(user_id)
    .bind(ttl.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(())
}

async fn revoke_family(conn: &mut PgConnection, family: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .execute(conn)
    .await?;
    Ok(())
}

async fn audit_session(
    conn: &mut PgConnection,
    user_id: Uuid,
    action: &'static str,
    outcome: &'static str,
    family: Uuid,
) -> Result<(), sqlx::Error> {
    let entry = AuditEntry {
        school_id: None,
        actor: user_actor(user_id),
        action,
        outcome,
        detail: json!({ "user_id": user_id, "family_id": family }),
    };
    audit::record(conn, &entry).await
}
