//! The sync protocol between a gateway and the cloud: what is sent and how it is framed.
//!
//! A gateway uploads a [`SyncBatch`] of outbox [`Record`]s; the cloud answers with a
//! [`SyncAck`] saying how far it has stored and carrying [`Command`]s for the gateway. Both
//! travel in the same envelope:
//!
//! ```text
//! [version: u16 little-endian][zstd frame of the postcard-encoded payload]
//! ```
//!
//! The version sits outside the compression so a peer on another format version is turned
//! away before any decompression work.
//!
//! - `record`: the upward payload ([`SyncBatch`] and the record bodies).
//! - `command`: the downward payload ([`SyncAck`], [`Command`]).
//! - `codec`: [`encode_batch`]/[`decode_batch`] and [`encode_ack`]/[`decode_ack`].
//! - `limits`: [`Limits`], the bounds every decode enforces.
//! - `error`: [`SyncError`].
//!
//! Compatibility rule: postcard is not self-describing, so fields are never reordered or
//! removed and enum variants are only appended. Any other change bumps
//! [`SYNC_FORMAT_VERSION`]. The crate's `tests/sync_golden.rs` pins the payload bytes.

mod codec;
mod command;
mod error;
mod limits;
mod record;

pub use codec::{decode_ack, decode_batch, encode_ack, encode_batch};
pub use command::{Command, CommandBody, SyncAck};
pub use error::SyncError;
pub use limits::Limits;
pub use record::{
    AlertEventRecord, CommandOutcome, CommandResult, DeviceHealthRecord, DeviceStatus, DropReason,
    Dropped, Lane, Record, RecordBody, SyncBatch,
};

/// The envelope version this build writes and accepts. Version 2 added lanes, epochs and
/// dropped runs to the batch.
pub const SYNC_FORMAT_VERSION: u16 = 2;
