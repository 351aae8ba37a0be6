//! A user's second factor in `users`: off, pending (a sealed secret shown to the user, not yet
//! proved) or active; the last accepted time step, so a code is good once; the operator's
//! reset. Every change is audited in its own transaction. Secrets arrive and leave sealed
//! (`auth::TotpKey`): this module never sees one in clear.
//!
//! These run in a transaction without schools (`users` is outside row-level security, and a
//! viewer's own second factor is theirs to change, so not under their read-only scope).

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::accounts::user_actor;
use super::audit::{self, AuditEntry};
use super::{DbError, Scope, begin};
use crate::auth::Email;

/// Who the admin commands audit as.
const ADMIN_ACTOR: &str = "admin-cli";

/// A user's second factor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotpState {
    /// None.
    Off,
    /// A secret was handed out and not yet confirmed with a code; login does not ask for one.
    Pending {
        /// The sealed secret.
        sealed: Vec<u8>,
    },
    /// Login asks for a code.
    Active {
        /// The sealed secret.
        sealed: Vec<u8>,
    },
}

impl TotpState {
    /// `off`, `pending` or `active`, as `GET /api/v1/me` says it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Pending { .. } => "pending",
            Self::Active { .. } => "active",
        }
    }
}

/// The second factor of `user` (off for an unknown user).
pub async fn state(pool: &PgPool, user: Uuid) -> Result<TotpState, DbError> {
    let mut tx = begin(pool, Scope::Schools(&[])).await?;
    let row: Option<(Option<Vec<u8>>, bool)> = sqlx::query_as(
        "SELECT totp_secret, totp_enabled_at IS NOT NULL FROM users WHERE user_id = $1",
    )
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(match row {
        Some((Some(sealed), true)) => TotpState::Active { sealed },
        Some((Some(sealed), false)) => TotpState::Pending { sealed },
        _ => TotpState::Off,
    })
}

/// Stores `sealed` as `user`'s pending secret (replacing a pending one) unless their second
/// factor is active; true when stored. Audited either way.
pub async fn start(pool: &PgPool, user: Uuid, sealed: &[u8]) -> Result<bool, DbError> {
    let mut tx = begin(pool, Scope::Schools(&[])).await?;
    let stored = sqlx::query(
        "UPDATE users SET totp_secret = $2, totp_enabled_at = NULL, totp_last_step = NULL \
         WHERE user_id = $1 AND totp_enabled_at IS NULL",
    )
    .bind(user)
    .bind(sealed)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let outcome = if stored { "ok" } else { "already_active" };
    audit::record(&mut tx, &own(user, "totp_start", outcome, json!({}))).await?;
    tx.commit().await?;
    Ok(stored)
}

/// Activates `user`'s pending secret, `step` being the time step of the code that proved it
/// (so that code cannot log in again). False when nothing was pending (another request
/// confirmed or restarted meanwhile is caught by comparing `sealed`).
pub async fn confirm(pool: &PgPool, user: Uuid, sealed: &[u8], step: u64) -> Result<bool, DbError> {
    let mut tx = begin(pool, Scope::Schools(&[])).await?;
    let activated = sqlx::query(
        "UPDATE users SET totp_enabled_at = now(), totp_last_step = $3 \
         WHERE user_id = $1 AND totp_secret = $2 AND totp_enabled_at IS NULL",
    )
    .bind(user)
    .bind(sealed)
    .bind(step_i64(step))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if activated {
        audit::record(&mut tx, &own(user, "totp_enable", "ok", json!({}))).await?;
    }
    tx.commit().await?;
    Ok(activated)
}

/// Records that a code of time step `step` was accepted for `user`, if no code of that or a
/// later step was accepted before; false otherwise (a replayed code). One statement, so two
/// logins racing with the same code cannot both win.
pub async fn accept_step(pool: &PgPool, user: Uuid, step: u64) -> Result<bool, DbError> {
    let mut tx = begin(pool, Scope::Schools(&[])).await?;
    let accepted = sqlx::query(
        "UPDATE users SET totp_last_step = $2 WHERE user_id = $1 \
         AND totp_enabled_at IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $2)",
    )
    .bind(user)
    .bind(step_i64(step))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(accepted)
}

/// Removes `user`'s second factor (they proved password and code), audited.
pub async fn disable(pool: &PgPool, user: Uuid) -> Result<(), DbError> {
    let mut tx = begin(pool, Scope::Schools(&[])).await?;
    clear(&mut tx, user).await?;
    audit::record(&mut tx, &own(user, "totp_disable", "ok", json!({}))).await?;
    tx.commit().await?;
    Ok(())
}

/// Audits a refusal concerning `user`'s own second factor (a wrong code, a wrong password,
/// a request that does not fit the state), in a transaction of its own.
pub async fn audit_refusal(
    pool: &PgPool,
    user: Uuid,
    action: &'static str,
    outcome: &'static str,
) -> Result<(), DbError> {
    audit::record_alone(pool, &own(user, action, outcome, json!({}))).await?;
    Ok(())
}

/// `cloud-sync admin reset-totp`: removes the second factor of the user with `email`
/// (pending or active), audited as the admin command. Returns the user and whether there
/// was anything to remove; `None` for an unknown address.
pub async fn reset(pool: &PgPool, email: &Email) -> Result<Option<(Uuid, bool)>, DbError> {
    let mut tx = begin(pool, Scope::AllSchools).await?;
    let row: Option<(Uuid, bool)> = sqlx::query_as(
        "SELECT user_id, totp_secret IS NOT NULL FROM users WHERE email = $1 FOR UPDATE",
    )
    .bind(email.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user, had)) = row else {
        return Ok(None);
    };
    clear(&mut tx, user).await?;
    let entry = AuditEntry {
        school_id: None,
        actor: ADMIN_ACTOR.to_owned(),
        action: "totp_reset",
        outcome: if had { "ok" } else { "was_off" },
        detail: json!({ "user_id": user, "email": email.as_str() }),
    };
    audit::record(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(Some((user, had)))
}

async fn clear(conn: &mut sqlx::PgConnection, user: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL \
         WHERE user_id = $1",
    )
    .bind(user)
    .execute(conn)
    .await?;
    Ok(())
}

fn own(
    user: Uuid,
    action: &'static str,
    outcome: &'static str,
    detail: Value,
) -> AuditEntry<'static> {
    let mut detail = detail;
    detail["user_id"] = json!(user);
    AuditEntry {
        school_id: None,
        actor: user_actor(user),
        action,
        outcome,
        detail,
    }
}

/// Time steps fit in `bigint` until long after the sun has gone out; saturate rather than wrap.
fn step_i64(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}
