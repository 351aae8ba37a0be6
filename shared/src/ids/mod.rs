//! Identifiers, parsed once at the boundary and carried as newtypes afterwards.
//!
//! - `text`: the human-assigned ids ([`SchoolId`], [`RegionId`], [`GatewayId`], [`DeviceId`]),
//!   restricted to characters that are safe in MQTT topics, file names and URLs.
//! - `unique`: the generated ids ([`AlertId`], [`CommandId`]), UUIDs.
//! - `seq`: [`Seq`], the gateway's outbox sequence number.
//! - `epoch`: [`Epoch`], which run of a gateway's outbox a record belongs to.
//! - `error`: [`IdError`], saying which kind of id was rejected and why.
//!
//! Every type validates in `FromStr`, `TryFrom` and `Deserialize` alike, so a value of one of
//! these types is valid wherever it came from.

mod epoch;
mod error;
mod seq;
mod text;
mod unique;

pub use epoch::Epoch;
pub use error::{IdError, IdErrorReason, IdKind};
pub use seq::Seq;
pub use text::{DeviceId, GatewayId, RegionId, SchoolId};
pub use unique::{AlertId, CommandId};
