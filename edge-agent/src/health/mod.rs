//! Device health: which registered devices are online, which have gone silent, and whose
//! battery needs replacing.
//!
//! Pure bookkeeping for the gateway's core actor: the actor passes the time in every call,
//! publishes and stores each [`HealthChange`] it gets back, and writes what
//! [`Health::take_dirty`] returns in one transaction every second or so. Nothing here reads a
//! clock, touches the store or spawns a task.
//!
//! Cost: [`Health::seen`] runs for every uplink (tens of thousands a second across a school),
//! so it is one map lookup and, for a device that stays online with a steady battery, no
//! allocation at all. [`Health::tick`], [`Health::take_dirty`], [`Health::counts`] and
//! [`Health::next_deadline`] scan every device; a school has at most a few thousand and the
//! actor calls them about once a second.
//!
//! Time: "silent for `offline_after`" includes the boundary, so a device whose last uplink was
//! at `t` is offline from `t + offline_after` on, which is exactly [`Health::next_deadline`].
//! Wall clocks can step backwards; a `last_seen` in the future is never "silent", and `tick`
//! pulls it back to `now` so that a clock stepped back by an hour does not keep a dead device
//! online for an extra hour.

mod change;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use firmware_protocol::{FirmwareVersion, Heartbeat};
use shared::UnixMillis;
use shared::ids::DeviceId;

pub use crate::config::HealthPolicy;
pub use change::{ChangeKind, HealthChange, OfflineReason};

/// How far above [`HealthPolicy::battery_low_mv`] a low battery must climb before it counts as
/// recovered, so a battery hovering at the threshold (its voltage sags under radio load) does
/// not flap between low and ok with every heartbeat.
pub const BATTERY_HYSTERESIS_MV: u16 = 100;

/// Whether the gateway hears from a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Liveness {
    /// Heard from within `offline_after`.
    Online,
    /// Silent for `offline_after`, or its session ended with its last will.
    Offline,
    /// Registered but never heard from (not yet installed, or never powered).
    NeverSeen,
}

/// What the gateway knows about one device's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceHealth {
    /// Whether it is online.
    pub status: Liveness,
    /// Its latest uplink of any kind, by the gateway's clock.
    pub last_seen: Option<UnixMillis>,
    /// Battery voltage from its latest heartbeat.
    pub battery_mv: Option<u16>,
    /// Signal strength from its latest heartbeat.
    pub rssi_dbm: Option<i8>,
    /// Firmware from its latest heartbeat.
    pub firmware: Option<FirmwareVersion>,
    /// Whether its battery is low (with hysteresis, see [`BATTERY_HYSTERESIS_MV`]).
    pub battery_low: bool,
}

impl DeviceHealth {
    /// A registered device the gateway has not heard from.
    pub const NEVER_SEEN: DeviceHealth = DeviceHealth {
        status: Liveness::NeverSeen,
        last_seen: None,
        battery_mv: None,
        rssi_dbm: None,
        firmware: None,
        battery_low: false,
    };
}

/// The health of every registered device.
#[derive(Debug)]
pub struct Health {
    policy: HealthPolicy,
    devices: HashMap<DeviceId, Slot>,
}

#[derive(Debug)]
struct Slot {
    health: DeviceHealth,
    /// Changed since the last [`Health::take_dirty`]. A flag rather than a set of ids, so
    /// marking a device dirty on every heartbeat costs no allocation.
    dirty: bool,
}

impl Health {
    /// No devices yet; [`Health::load`] and [`Health::add`] register them.
    pub fn new(policy: HealthPolicy) -> Self {
        Self {
            policy,
            devices: HashMap::new(),
        }
    }

    /// Registers the devices stored at start-up with their stored `last_seen` and whether they
    /// were stored online. A device stored online whose `last_seen` is already `offline_after`
    /// old (or missing) starts offline and is returned as gone [`OfflineReason::Silent`] at
    /// `now`, so the cloud hears of it; a device stored offline stays offline even if it was
    /// seen recently (it may have left with its last will) until it next sends something.
    /// A device stored online and seen recently stays online, so a quick restart of the
    /// gateway does not flap every device. Battery, signal and firmware are not stored; they
    /// come back with the next heartbeat. Devices already registered are replaced.
    pub fn load(
        &mut self,
        devices: impl IntoIterator<Item = (DeviceId, Option<UnixMillis>, bool)>,
        now: UnixMillis,
    ) -> Vec<HealthChange> {
        let mut changes = Vec::new();
        for (device, last_seen, stored_online) in devices {
            let fresh = last_seen.is_some_and(|at| !self.silent(at, now));
            let status = match last_seen {
                None => Liveness::NeverSeen,
                Some(_) if stored_online && fresh => Liveness::Online,
                Some(_) => Liveness::Offline,
            };
            let health = DeviceHealth {
                status,
                last_seen,
                ..DeviceHealth::NEVER_SEEN
            };
            let went_offline = stored_online && status != Liveness::Online;
            if went_offline {
                changes.push(HealthChange {
                    device: device.clone(),
                    at: now,
                    change: ChangeKind::Offline {
                        reason: OfflineReason::Silent,
                    },
                    health,
                });
            }
            let slot = Slot {
                health,
                dirty: went_offline,
            };
            self.devices.insert(device, slot);
        }
        changes.sort_by(|a, b| a.device.cmp(&b.device));
        changes
    }

    /// Registers a device added at runtime; it is [`Liveness::NeverSeen`] until it speaks.
    /// Adding a device already registered keeps what is known of it.
    pub fn add(&mut self, device: DeviceId) {
        self.devices.entry(device).or_insert(Slot {
            health: DeviceHealth::NEVER_SEEN,
            dirty: false,
        });
    }

    /// Forgets a revoked device: it no longer counts, and its uplinks are ignored.
    pub fn remove(&mut self, device: &DeviceId) {
        self.devices.remove(device);
    }

    /// Records an uplink from `device`: any frame proves it alive, and a heartbeat also
    /// carries its battery, signal and firmware. Returns [`ChangeKind::Online`] if it was not
    /// online, and [`ChangeKind::BatteryLow`] or [`ChangeKind::BatteryOk`] when its battery
    /// crosses the threshold (in that order; each change carries the health after the whole
    /// uplink). Unknown devices are ignored: the gate only admits registered devices, so one
    /// here was revoked a moment ago.
    ///
    /// `last_seen` becomes `now` even if `now` is earlier than the stored value: the latest
    /// uplink by the current clock is what later silence is measured from.
    pub fn seen(
        &mut self,
        device: &DeviceId,
        now: UnixMillis,
        heartbeat: Option<&Heartbeat>,
    ) -> Vec<HealthChange> {
        let policy = self.policy;
        let Some(slot) = self.devices.get_mut(device) else {
            return Vec::new();
        };
        slot.dirty = true;
        let health = &mut slot.health;
        health.last_seen = Some(now);
        let came_online = health.status != Liveness::Online;
        health.status = Liveness::Online;
        let battery = heartbeat.and_then(|beat| {
            health.battery_mv = Some(beat.battery_mv);
            health.rssi_dbm = Some(beat.rssi_dbm);
            health.firmware = Some(beat.firmware);
            battery_change(&policy, health, beat.battery_mv)
        });
        if !came_online && battery.is_none() {
            return Vec::new();
        }
        let health = *health;
        let online = came_online.then_some(ChangeKind::Online);
        online
            .into_iter()
            .chain(battery)
            .map(|change| HealthChange {
                device: device.clone(),
                at: now,
                change,
                health,
            })
            .collect()
    }

    /// The gate reports that the device's session ended with its MQTT last will (the broker
    /// saw the connection drop): it is offline at once rather than after `offline_after`.
    /// `None` if it was not online or is unknown.
    pub fn last_will(&mut self, device: &DeviceId, now: UnixMillis) -> Option<HealthChange> {
        let slot = self.devices.get_mut(device)?;
        if slot.health.status != Liveness::Online {
            return None;
        }
        slot.health.status = Liveness::Offline;
        slot.dirty = true;
        Some(HealthChange {
            device: device.clone(),
            at: now,
            change: ChangeKind::Offline {
                reason: OfflineReason::LastWill,
            },
            health: slot.health,
        })
    }

    /// Takes online devices that have been silent for `offline_after` offline, returned in
    /// device order with `at` set to `now` (when the gateway noticed).
    pub fn tick(&mut self, now: UnixMillis) -> Vec<HealthChange> {
        let policy = self.policy;
        let mut changes = Vec::new();
        for (device, slot) in &mut self.devices {
            let health = &mut slot.health;
            let Some(last_seen) = health.last_seen else {
                continue;
            };
            if health.status != Liveness::Online {
                continue;
            }
            if last_seen > now {
                // The clock stepped back: measure silence from the step instead.
                health.last_seen = Some(now);
                slot.dirty = true;
            } else if silent_for(&policy, last_seen, now) {
                health.status = Liveness::Offline;
                slot.dirty = true;
                changes.push(HealthChange {
                    device: device.clone(),
                    at: now,
                    change: ChangeKind::Offline {
                        reason: OfflineReason::Silent,
                    },
                    health: *health,
                });
            }
        }
        changes.sort_by(|a, b| a.device.cmp(&b.device));
        changes
    }

    /// Devices whose health changed since the last call, in device order, with their current
    /// health; clears the marks. Many heartbeats from one device make one entry.
    pub fn take_dirty(&mut self) -> Vec<(DeviceId, DeviceHealth)> {
        let mut dirty: Vec<_> = self
            .devices
            .iter_mut()
            .filter(|(_, slot)| slot.dirty)
            .map(|(device, slot)| {
                slot.dirty = false;
                (device.clone(), slot.health)
            })
            .collect();
        dirty.sort_by(|a, b| a.0.cmp(&b.0));
        dirty
    }

    /// One device's health, if it is registered.
    pub fn get(&self, device: &DeviceId) -> Option<&DeviceHealth> {
        self.devices.get(device).map(|slot| &slot.health)
    }

    /// Registered devices online, and not online (offline or never seen), for the snapshot.
    pub fn counts(&self) -> (u32, u32) {
        let online = self
            .devices
            .values()
            .filter(|slot| slot.health.status == Liveness::Online)
            .count();
        let offline = self.devices.len() - online;
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (clamp(online), clamp(offline))
    }

    /// The earliest instant at which [`Health::tick`] could take a device offline, so the
    /// actor can sleep until then; `None` when no device is online. A `last_seen` in the
    /// future (clock stepped back) gives a deadline past `now + offline_after`; the actor's
    /// once-a-second tick corrects it.
    pub fn next_deadline(&self) -> Option<UnixMillis> {
        self.devices
            .values()
            .filter(|slot| slot.health.status == Liveness::Online)
            .filter_map(|slot| slot.health.last_seen)
            .min()
            .map(|at| at.saturating_add(self.policy.offline_after))
    }

    fn silent(&self, last_seen: UnixMillis, now: UnixMillis) -> bool {
        silent_for(&self.policy, last_seen, now)
    }
}

/// Whether `now` is at least `offline_after` past `last_seen`; never when `now` is earlier.
fn silent_for(policy: &HealthPolicy, last_seen: UnixMillis, now: UnixMillis) -> bool {
    now.duration_since(last_seen)
        .is_some_and(|silence| silence >= policy.offline_after)
}

/// Updates `battery_low` for a new reading and says whether it flipped.
fn battery_change(policy: &HealthPolicy, health: &mut DeviceHealth, mv: u16) -> Option<ChangeKind> {
    if !health.battery_low && mv < policy.battery_low_mv {
        health.battery_low = true;
        Some(ChangeKind::BatteryLow)
    } else if health.battery_low
        && mv >= policy.battery_low_mv.saturating_add(BATTERY_HYSTERESIS_MV)
    {
        health.battery_low = false;
        Some(ChangeKind::BatteryOk)
    } else {
        None
    }
}
