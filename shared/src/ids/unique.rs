//! Generated identifiers: alerts and cloud commands, both UUIDs.
//!
//! Alert ids are UUID version 7 (a millisecond timestamp followed by randomness), so sorting
//! by id sorts by creation time across gateways without consulting another column; parsing
//! therefore rejects other versions. Command ids accept any UUID because the cloud may mint
//! them in Postgres, but [`CommandId::new`] also uses version 7.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{IdError, IdErrorReason, IdKind};

/// One alert, from trigger to close. Minted by the gateway; a UUID version 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Uuid", into = "Uuid")]
pub struct AlertId(Uuid);

/// One command sent from the cloud to a gateway, echoed back in its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommandId(Uuid);

// === impl AlertId ===

impl AlertId {
    /// A fresh, time-ordered id.
    #[allow(clippy::new_without_default)] // A default that is random each time would surprise.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps a UUID read from a store, checking it is version 7.
    pub fn from_uuid(uuid: Uuid) -> Result<Self, IdError> {
        match uuid.get_version_num() {
            7 => Ok(Self(uuid)),
            found => Err(IdError::new(
                IdKind::Alert,
                IdErrorReason::WrongUuidVersion { found, expected: 7 },
            )),
        }
    }

    /// The underlying UUID, e.g. for a database column.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl TryFrom<Uuid> for AlertId {
    type Error = IdError;

    fn try_from(uuid: Uuid) -> Result<Self, IdError> {
        Self::from_uuid(uuid)
    }
}

impl From<AlertId> for Uuid {
    fn from(id: AlertId) -> Uuid {
        id.0
    }
}

impl FromStr for AlertId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let uuid =
            Uuid::parse_str(s).map_err(|_| IdError::new(IdKind::Alert, IdErrorReason::NotUuid))?;
        Self::from_uuid(uuid)
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

// === impl CommandId ===

impl CommandId {
    /// A fresh, time-ordered id.
    #[allow(clippy::new_without_default)] // A default that is random each time would surprise.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID, e.g. for a database column.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl From<Uuid> for CommandId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl From<CommandId> for Uuid {
    fn from(id: CommandId) -> Uuid {
        id.0
    }
}

impl FromStr for CommandId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| IdError::new(IdKind::Command, IdErrorReason::NotUuid))
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_are_time_ordered_and_round_trip_as_text() {
        let first = AlertId::new();
        let second = AlertId::new();
        assert!(first < second);
        assert_eq!(first.to_string().parse::<AlertId>().unwrap(), first);
    }

    #[test]
    fn alert_id_rejects_other_uuid_versions_in_text_and_on_the_wire() {
        let v4 = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        let err = v4.parse::<AlertId>().unwrap_err();
        assert_eq!(
            err.reason,
            IdErrorReason::WrongUuidVersion {
                found: 4,
                expected: 7
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid alert id: it is a version 4 UUID, version 7 is required"
        );
        let wire = postcard::to_allocvec(&Uuid::parse_str(v4).unwrap()).unwrap();
        assert!(postcard::from_bytes::<AlertId>(&wire).is_err());
        assert_eq!(
            "nope".parse::<AlertId>().unwrap_err().reason,
            IdErrorReason::NotUuid
        );
    }

    #[test]
    fn command_ids_accept_any_uuid() {
        let v4 = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert_eq!(v4.parse::<CommandId>().unwrap().to_string(), v4);
        assert_eq!("x".parse::<CommandId>().unwrap_err().kind, IdKind::Command);
    }
}
