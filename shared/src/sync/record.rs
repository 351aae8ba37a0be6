//! The upward payload: a gateway's batch of outbox records.
//!
//! Field order and variant order are the wire format (see the `sync` module docs). Fields are
//! kept small because most records are routine health reports and snapshots, sent all day
//! by every school.

use serde::{Deserialize, Serialize};

use crate::alert::{Actor, AlertEventKind, AlertKind, AlertState, Severity};
use crate::ids::{AlertId, CommandId, DeviceId, Epoch, GatewayId, SchoolId, Seq};
use crate::names::impl_names;
use crate::snapshot::SchoolSnapshot;
use crate::time::UnixMillis;

/// What a gateway uploads: a run of one lane of its outbox, oldest first, all of one epoch.
///
/// An empty batch is a heartbeat: it says the gateway is alive and asks for pending commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncBatch {
    /// The sending gateway (the cloud also checks it against the client certificate).
    pub gateway_id: GatewayId,
    /// The school the gateway serves.
    pub school_id: SchoolId,
    /// The run of the gateway's outbox these records were written in.
    pub epoch: Epoch,
    /// The lane: each has its own sequence numbers and its own cursor in the cloud.
    pub lane: Lane,
    /// Records with consecutive `seq`s (a [`Dropped`] record spans its whole range).
    pub records: Vec<Record>,
}

/// The outbox's queues. Each has its own sequence numbers, so a backlog of telemetry never
/// stands in front of an alert. Variants are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lane {
    /// Alert log entries and command results: sent first and at once, never thinned.
    Alert,
    /// Device health and snapshots: batched, and thinned when the gateway runs short of
    /// storage during a long outage.
    Telemetry,
}

impl_names!(Lane, "lane", {
    Alert => "alert",
    Telemetry => "telemetry",
});

/// One outbox entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in its lane of the gateway's outbox; what the cloud acknowledges.
    pub seq: Seq,
    /// When it happened, by the gateway's clock.
    pub at: UnixMillis,
    /// What happened.
    pub body: RecordBody,
}

/// The kinds of record. Variants are only ever appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordBody {
    /// An entry of an alert's event log.
    AlertEvent(AlertEventRecord),
    /// A device's health changed or was reported.
    DeviceHealth(DeviceHealthRecord),
    /// A periodic school roll-up.
    Snapshot(SchoolSnapshot),
    /// The outcome of a command the cloud sent.
    CommandResult(CommandResult),
    /// Records `seq..=through` of the lane are gone on purpose; the cloud counts them and
    /// moves its cursor past them.
    Dropped(Dropped),
}

impl RecordBody {
    /// The lane a record of this kind travels in; `None` for [`RecordBody::Dropped`], which
    /// stands in for records of whichever lane it is in.
    pub const fn lane(&self) -> Option<Lane> {
        match self {
            Self::AlertEvent(_) | Self::CommandResult(_) => Some(Lane::Alert),
            Self::DeviceHealth(_) | Self::Snapshot(_) => Some(Lane::Telemetry),
            Self::Dropped(_) => None,
        }
    }
}

/// A run of records the gateway removed from its outbox before the cloud had them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// The last seq of the run (the record's own `seq` is the first).
    pub through: Seq,
    /// Why they were removed.
    pub reason: DropReason,
}

/// Why a gateway removed records unsent. Variants are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DropReason {
    /// Older telemetry thinned by the retention policy (e.g. one snapshot per 5 minutes kept).
    Thinned,
    /// Telemetry removed because the outbox reached its disk budget.
    StorageBudget,
    /// A record the cloud refused as malformed, moved to the gateway's dead-letter table.
    DeadLettered,
}

impl_names!(DropReason, "drop reason", {
    Thinned => "thinned",
    StorageBudget => "storage_budget",
    DeadLettered => "dead_lettered",
});

/// One alert log entry, with enough of the alert's current facts that the cloud can show the
/// alert from its latest record alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEventRecord {
    /// The alert.
    pub alert_id: AlertId,
    /// What kind of alert.
    pub kind: AlertKind,
    /// Severity after the event.
    pub severity: Severity,
    /// State after the event.
    pub state: AlertState,
    /// What happened.
    pub event: AlertEventKind,
    /// The device that raised the alert, if a device did.
    pub device_id: Option<DeviceId>,
    /// The room, as configured for the device, if known.
    pub room: Option<String>,
    /// Who caused the event, if someone did (not for timer escalations).
    pub actor: Option<Actor>,
    /// Presses joined into the alert so far, including the first.
    pub press_count: u32,
}

/// A device's health at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHealthRecord {
    /// The device.
    pub device_id: DeviceId,
    /// Its status.
    pub status: DeviceStatus,
    /// Battery voltage in millivolts, if the device reports it.
    pub battery_mv: Option<u16>,
    /// Received signal strength in dBm, if the device reports it.
    pub rssi_dbm: Option<i8>,
}

/// Device status as the gateway sees it. Variants are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeviceStatus {
    /// Connected and reporting.
    Online,
    /// Not heard from within the heartbeat timeout.
    Offline,
    /// Reporting, but its battery needs replacing.
    BatteryLow,
    /// Reporting a hardware fault (self-test failure, tamper switch).
    Fault,
}

impl_names!(DeviceStatus, "device status", {
    Online => "online",
    Offline => "offline",
    BatteryLow => "battery_low",
    Fault => "fault",
});

/// What became of a cloud command on the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The command, as the cloud sent it.
    pub command_id: CommandId,
    /// What happened.
    pub outcome: CommandOutcome,
}

/// Whether a command took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutcome {
    /// Done.
    Applied,
    /// Refused, e.g. the alert was already closed; the reason is for people to read.
    Rejected {
        /// Why.
        reason: String,
    },
}
