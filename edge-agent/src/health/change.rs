//! [`HealthChange`]: a change in a device's health worth an event and an outbox record, and
//! its conversion to the sync format.

use shared::UnixMillis;
use shared::ids::DeviceId;
use shared::sync::{DeviceHealthRecord, DeviceStatus};

use super::{DeviceHealth, Liveness};

/// A device went online or offline, or its battery became low or recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChange {
    /// The device.
    pub device: DeviceId,
    /// When the gateway noticed, by its clock.
    pub at: UnixMillis,
    /// What changed.
    pub change: ChangeKind,
    /// The device's health after the change.
    pub health: DeviceHealth,
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The device was offline or never seen and sent something.
    Online,
    /// The device is no longer reachable.
    Offline {
        /// How the gateway found out.
        reason: OfflineReason,
    },
    /// The battery dropped below the threshold.
    BatteryLow,
    /// The battery climbed back to the threshold plus the hysteresis.
    BatteryOk,
}

/// How the gateway found out that a device is offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfflineReason {
    /// Nothing heard for `offline_after`.
    Silent,
    /// Its MQTT session ended with its last will (the connection dropped).
    LastWill,
}

impl ChangeKind {
    /// The device status this change announces on its own.
    pub fn status(&self) -> DeviceStatus {
        match self {
            ChangeKind::Online | ChangeKind::BatteryOk => DeviceStatus::Online,
            ChangeKind::Offline { .. } => DeviceStatus::Offline,
            ChangeKind::BatteryLow => DeviceStatus::BatteryLow,
        }
    }
}

impl HealthChange {
    /// The outbox record for this change.
    ///
    /// The status is the device's whole status after the change rather than
    /// [`ChangeKind::status`]: the cloud keeps the latest record per device, so a device that
    /// comes back online with a battery still low must be reported `BatteryLow`, not `Online`,
    /// or the cloud would forget the battery until it next crosses the threshold.
    pub fn to_record(&self) -> DeviceHealthRecord {
        let status = match self.health.status {
            Liveness::Online if self.health.battery_low => DeviceStatus::BatteryLow,
            Liveness::Online => DeviceStatus::Online,
            Liveness::Offline | Liveness::NeverSeen => DeviceStatus::Offline,
        };
        DeviceHealthRecord {
            device_id: self.device.clone(),
            status,
            battery_mv: self.health.battery_mv,
            rssi_dbm: self.health.rssi_dbm,
        }
    }
}
