//! Cloud → gateway commands. A dashboard action becomes a row here; every ack to that gateway
//! carries it until the gateway reports its outcome (a `CommandResult` record), so a gateway
//! offline for hours gets it when it returns and applying it twice is harmless (commands
//! carry ids; the gateway's state machine decides). The cloud never changes an alert's state
//! itself: the alert shows "requested" until the gateway's own event arrives.

use serde_json::json;
use shared::alert::AlertState;
use shared::ids::{AlertId, CommandId, DeviceId, SchoolId};
use shared::sync::{Command, CommandBody};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use super::{DbError, Scope, begin};
use crate::pki::GatewayIdentity;

/// What a cloud user asks the school to do with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    /// Acknowledge it.
    Acknowledge,
    /// Resolve it.
    Resolve,
    /// Cancel it (a false alarm).
    Cancel,
}

impl AlertAction {
    fn kind(self) -> &'static str {
        match self {
            Self::Acknowledge => "acknowledge",
            Self::Resolve => "resolve",
            Self::Cancel => "cancel",
        }
    }
}

/// Queues `action` on `alert` for the gateway that reported the alert. `None` when no open
/// alert with that id is in `scope` (the caller answers 404).
pub async fn request_alert_action(
    pool: &PgPool,
    scope: Scope<'_>,
    school: &SchoolId,
    alert: AlertId,
    action: AlertAction,
    by: &str,
) -> Result<Option<CommandId>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let open: Vec<&str> = AlertState::ALL
        .iter()
        .filter(|s| s.is_open())
        .map(|s| s.as_str())
        .collect();
    let command = CommandId::new();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO gateway_commands (school_id, command_id, gateway_id, kind, alert_id, \
           requested_by) \
         SELECT school_id, $3, gateway_id, $4, alert_id, $5 FROM alerts \
         WHERE school_id = $1 AND alert_id = $2 AND state = ANY($6) \
         RETURNING command_id",
    )
    .bind(school.as_str())
    .bind(alert.as_uuid())
    .bind(command.as_uuid())
    .bind(action.kind())
    .bind(by)
    .bind(&open)
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        return Ok(None);
    }
    notify(&mut tx, school, command).await?;
    let entry = AuditEntry {
        school_id: Some(school),
        actor: by.to_owned(),
        action: "request_alert_action",
        outcome: "ok",
        detail: json!({ "alert_id": alert.to_string(), "action": action.kind(),
            "command_id": command.to_string() }),
    };
    audit::record(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(Some(command))
}

/// Queues the revocation of a lost or stolen device on the gateway of `school` that last
/// reported it. `None` when the device is unknown in `scope`.
pub async fn request_device_revocation(
    pool: &PgPool,
    scope: Scope<'_>,
    school: &SchoolId,
    device: &DeviceId,
    by: &str,
) -> Result<Option<CommandId>, DbError> {
    let mut tx = begin(pool, scope).await?;
    let command = CommandId::new();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO gateway_commands (school_id, command_id, gateway_id, kind, device_id, \
           requested_by) \
         SELECT school_id, $3, gateway_id, 'revoke_device', device_id, $4 FROM devices \
         WHERE school_id = $1 AND device_id = $2 RETURNING command_id",
    )
    .bind(school.as_str())
    .bind(device.as_str())
    .bind(command.as_uuid())
    .bind(by)
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        return Ok(None);
    }
    notify(&mut tx, school, command).await?;
    tx.commit().await?;
    Ok(Some(command))
}

/// The gateway's unconfirmed commands, oldest first, at most `max`; counts the delivery.
/// Writes nothing when there is nothing pending.
pub(crate) async fn deliver_pending(
    conn: &mut PgConnection,
    gateway: &GatewayIdentity,
    max: usize,
) -> Result<Vec<Command>, sqlx::Error> {
    type Row = (Uuid, String, Option<Uuid>, Option<String>, String, i64);
    let mut rows: Vec<Row> = sqlx::query_as(
        "WITH pending AS ( \
           SELECT command_id FROM gateway_commands \
           WHERE school_id = $1 AND gateway_id = $2 AND confirmed_at IS NULL \
           ORDER BY created_at, command_id LIMIT $3) \
         UPDATE gateway_commands c SET deliveries = deliveries + 1, last_delivered = now() \
         FROM pending p WHERE c.school_id = $1 AND c.command_id = p.command_id \
         RETURNING c.command_id, c.kind, c.alert_id, c.device_id, c.requested_by, \
           (extract(epoch FROM c.created_at) * 1000000)::bigint",
    )
    .bind(gateway.school_id.as_str())
    .bind(gateway.gateway_id.as_str())
    .bind(i64::try_from(max).unwrap_or(i64::MAX))
    .fetch_all(conn)
    .await?;
    rows.sort_by_key(|row| (row.5, row.0));
    Ok(rows.into_iter().filter_map(to_command).collect())
}

fn to_command(
    (id, kind, alert, device, by, _): (Uuid, String, Option<Uuid>, Option<String>, String, i64),
) -> Option<Command> {
    let alert = || alert.and_then(|a| AlertId::from_uuid(a).ok());
    let body = match kind.as_str() {
        "acknowledge" => CommandBody::Acknowledge {
            alert_id: alert()?,
            by,
        },
        "resolve" => CommandBody::Resolve {
            alert_id: alert()?,
            by,
        },
        "cancel" => CommandBody::Cancel {
            alert_id: alert()?,
            by,
        },
        "revoke_device" => CommandBody::RevokeDevice {
            device_id: device?.parse().ok()?,
        },
        _ => None?,
    };
    Some(Command {
        id: CommandId::from(id),
        body,
    })
}

async fn notify(
    conn: &mut PgConnection,
    school: &SchoolId,
    command: CommandId,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_notify('hallwatch_commands', \
           json_build_object('school_id', $1::text, 'command_id', $2::uuid)::text)",
    )
    .bind(school.as_str())
    .bind(command.as_uuid())
    .execute(conn)
    .await?;
    Ok(())
}
