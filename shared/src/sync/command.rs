//! The downward payload: the cloud's acknowledgement, carrying commands for the gateway.

use serde::{Deserialize, Serialize};

use crate::alert::{Actor, AlertEvent, Source};
use crate::ids::{AlertId, CommandId, DeviceId, Seq};

/// The cloud's answer to a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncAck {
    /// Every record up to and including this one is stored; the gateway may drop them.
    /// [`Seq::ZERO`] acknowledges nothing.
    pub acked_through: Seq,
    /// Commands for the gateway, oldest first. The gateway reports each one's outcome as a
    /// [`crate::sync::CommandResult`] record.
    pub commands: Vec<Command>,
}

/// One instruction from the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Identifies the command, so retries are idempotent and results can be matched.
    pub id: CommandId,
    /// What to do.
    pub body: CommandBody,
}

/// What the cloud can ask a gateway to do. Variants are only ever appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandBody {
    /// Acknowledge an alert on behalf of a cloud user.
    Acknowledge {
        /// The alert.
        alert_id: AlertId,
        /// The cloud user's name, for the audit log.
        by: String,
    },
    /// Resolve an alert on behalf of a cloud user.
    Resolve {
        /// The alert.
        alert_id: AlertId,
        /// The cloud user's name, for the audit log.
        by: String,
    },
    /// Stop trusting a device (lost or stolen button): revoke its certificate.
    RevokeDevice {
        /// The device.
        device_id: DeviceId,
    },
    /// Cancel an alert on behalf of a cloud user (a false alarm).
    Cancel {
        /// The alert.
        alert_id: AlertId,
        /// The cloud user's name, for the audit log.
        by: String,
    },
}

impl CommandBody {
    /// The state-machine event this command asks for, and the alert it applies to, with the
    /// cloud user as the actor. `None` for commands that are not about an alert.
    pub fn alert_event(&self) -> Option<(AlertId, AlertEvent)> {
        let cloud = |name: &str| Actor::new(Source::Cloud, name);
        match self {
            Self::Acknowledge { alert_id, by } => {
                Some((*alert_id, AlertEvent::Acknowledge { by: cloud(by) }))
            }
            Self::Resolve { alert_id, by } => {
                Some((*alert_id, AlertEvent::Resolve { by: cloud(by) }))
            }
            // The cancel window only binds devices, so staff cancels do not claim to be in it.
            Self::Cancel { alert_id, by } => Some((
                *alert_id,
                AlertEvent::Cancel {
                    by: cloud(by),
                    within_window: false,
                },
            )),
            Self::RevokeDevice { .. } => None,
        }
    }
}
