//! Redeeming an enrollment token: checks it, issues the gateway's certificate and marks the
//! token used, all in one transaction. Every refusal is audited. The gateway's sync cursors
//! are not made here: each (epoch, lane) gets its own when its first record arrives.
//!
//! The token's school is found through `hallwatch_enrollment_token_school`, the one
//! privileged lookup (it answers only to the holder of the token); everything after it runs
//! scoped to that school.

use serde_json::json;
use shared::ids::{GatewayId, SchoolId};
use sqlx::PgPool;

use super::audit::{self, AuditEntry};
use super::{DbError, Scope, begin, set_scope};
use crate::pki::{GatewayCa, PkiError, TokenHash, new_gateway_id};

/// A gateway that has just enrolled.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// Its school.
    pub school_id: SchoolId,
    /// The id the cloud assigned it.
    pub gateway_id: GatewayId,
    /// Its client certificate, PEM.
    pub cert_pem: String,
}

/// Why an enrollment was refused. Each is audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No such token (mistyped or guessed).
    UnknownToken,
    /// The token's time ran out.
    Expired,
    /// The token enrolled a gateway already.
    AlreadyUsed,
    /// The CSR could not be used; the token stays valid.
    BadCsr(String),
}

impl Refusal {
    fn outcome(&self) -> &'static str {
        match self {
            Self::UnknownToken => "unknown_token",
            Self::Expired => "token_expired",
            Self::AlreadyUsed => "token_used",
            Self::BadCsr(_) => "bad_csr",
        }
    }
}

/// Enrolls the gateway holding `token`, signing `csr_pem` with `ca`.
pub async fn enroll(
    pool: &PgPool,
    ca: &GatewayCa,
    token: &str,
    csr_pem: &str,
) -> Result<Result<Enrolled, Refusal>, DbError> {
    let hash = TokenHash::of(token);
    let mut tx = begin(pool, Scope::Schools(&[])).await?;
    let school: Option<String> = sqlx::query_scalar("SELECT hallwatch_enrollment_token_school($1)")
        .bind(hash.0.as_slice())
        .fetch_one(&mut *tx)
        .await?;
    let Some(school) = school.and_then(|s| s.parse::<SchoolId>().ok()) else {
        refuse(&mut tx, None, &Refusal::UnknownToken).await?;
        tx.commit().await?;
        return Ok(Err(Refusal::UnknownToken));
    };
    set_scope(&mut tx, Scope::School(&school)).await?;

    let (expired, used): (bool, bool) = sqlx::query_as(
        "SELECT expires_at <= now(), used_at IS NOT NULL FROM enrollment_tokens \
         WHERE school_id = $1 AND token_hash = $2 FOR UPDATE",
    )
    .bind(school.as_str())
    .bind(hash.0.as_slice())
    .fetch_one(&mut *tx)
    .await?;
    let refusal = if used {
        Some(Refusal::AlreadyUsed)
    } else if expired {
        Some(Refusal::Expired)
    } else {
        None
    };
    if let Some(refusal) = refusal {
        refuse(&mut tx, Some(&school), &refusal).await?;
        tx.commit().await?;
        return Ok(Err(refusal));
    }

    let gateway_id = new_gateway_id()?;
    let issued = match ca.sign_gateway(csr_pem, &school, &gateway_id) {
        Ok(issued) => issued,
        Err(PkiError::BadCsr(reason)) => {
            let refusal = Refusal::BadCsr(reason.to_string());
            refuse(&mut tx, Some(&school), &refusal).await?;
            tx.commit().await?;
            return Ok(Err(refusal));
        }
        Err(other) => return Err(other.into()),
    };
    sqlx::query("INSERT INTO gateways (school_id, gateway_id, cert_serial) VALUES ($1, $2, $3)")
        .bind(school.as_str())
        .bind(gateway_id.as_str())
        .bind(&issued.serial_hex)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE enrollment_tokens SET used_at = now(), gateway_id = $3 \
         WHERE school_id = $1 AND token_hash = $2",
    )
    .bind(school.as_str())
    .bind(hash.0.as_slice())
    .bind(gateway_id.as_str())
    .execute(&mut *tx)
    .await?;
    let entry = AuditEntry {
        school_id: Some(&school),
        actor: format!("gateway:{gateway_id}"),
        action: "enroll",
        outcome: "ok",
        detail: json!({ "cert_serial": issued.serial_hex }),
    };
    audit::record(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(Ok(Enrolled {
        school_id: school,
        gateway_id,
        cert_pem: issued.cert_pem,
    }))
}

/// What a token would do, found without using it up ([`check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// It would enroll a gateway of the school asked about, until this time (Unix ms).
    Valid { expires_at: i64 },
    /// It belongs to another school, and would enroll a gateway of that one.
    OtherSchool(SchoolId),
    /// Enrollment would refuse it (never [`Refusal::BadCsr`]: no CSR is involved).
    Refused(Refusal),
}

/// Checks `token` for a gateway of `school` without using it up: the lookup enrollment makes,
/// read only. Refusals are audited (action `enroll_check`), so guessing leaves a trail.
pub async fn check(pool: &PgPool, token: &str, school: &SchoolId) -> Result<Checked, DbError> {
    let hash = TokenHash::of(token);
    let mut tx = begin(pool, Scope::Schools(&[])).await?;
    let found: Option<String> = sqlx::query_scalar("SELECT hallwatch_enrollment_token_school($1)")
        .bind(hash.0.as_slice())
        .fetch_one(&mut *tx)
        .await?;
    let Some(theirs) = found.and_then(|s| s.parse::<SchoolId>().ok()) else {
        audit_check(&mut tx, None, "unknown_token").await?;
        tx.commit().await?;
        return Ok(Checked::Refused(Refusal::UnknownToken));
    };
    set_scope(&mut tx, Scope::School(&theirs)).await?;
    let (expired, used, expires_at): (bool, bool, i64) = sqlx::query_as(
        "SELECT expires_at <= now(), used_at IS NOT NULL, \
           (extract(epoch FROM expires_at) * 1000)::bigint \
         FROM enrollment_tokens WHERE school_id = $1 AND token_hash = $2",
    )
    .bind(theirs.as_str())
    .bind(hash.0.as_slice())
    .fetch_one(&mut *tx)
    .await?;
    let checked = if used {
        Checked::Refused(Refusal::AlreadyUsed)
    } else if expired {
        Checked::Refused(Refusal::Expired)
    } else if &theirs != school {
        Checked::OtherSchool(theirs.clone())
    } else {
        Checked::Valid { expires_at }
    };
    let outcome = match &checked {
        Checked::Valid { .. } => None,
        Checked::OtherSchool(_) => Some("wrong_school"),
        Checked::Refused(refusal) => Some(refusal.outcome()),
    };
    if let Some(outcome) = outcome {
        audit_check(&mut tx, Some(&theirs), outcome).await?;
    }
    tx.commit().await?;
    Ok(checked)
}

async fn audit_check(
    conn: &mut sqlx::PgConnection,
    school: Option<&SchoolId>,
    outcome: &'static str,
) -> Result<(), sqlx::Error> {
    let entry = AuditEntry {
        school_id: school,
        actor: "enroll".to_owned(),
        action: "enroll_check",
        outcome,
        detail: json!({}),
    };
    audit::record(conn, &entry).await
}

async fn refuse(
    conn: &mut sqlx::PgConnection,
    school: Option<&SchoolId>,
    refusal: &Refusal,
) -> Result<(), sqlx::Error> {
    let detail = match refusal {
        Refusal::BadCsr(reason) => json!({ "reason": reason }),
        _ => json!({}),
    };
    let entry = AuditEntry {
        school_id: school,
        actor: "enroll".to_owned(),
        action: "enroll",
        outcome: refusal.outcome(),
        detail,
    };
    audit::record(conn, &entry).await
}
