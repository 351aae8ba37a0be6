//! Device health, room counts and school snapshots in the engine: the pure rollups
//! ([`crate::health`], [`crate::occupancy`]) fed with uplinks and the clock, and what they
//! report written to the engine's transaction.
//!
//! `last_seen` is kept in memory and written for all devices together about once a second
//! (coalesced: not one fsync per heartbeat); every status change (online, offline, battery) is
//! written at once with its outbox record and stream event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use firmware_protocol::{DeviceConfig, Downlink, Label, Occupancy as OccupancyReport, TimeSync};
use shared::UnixMillis;
use shared::ids::{DeviceId, SchoolId};
use shared::sync::RecordBody;

use super::effects::Effects;
use crate::config::Config;
use crate::health::{ChangeKind, Health, HealthChange, Liveness};
use crate::occupancy::{
    Changed, Occupancy, RoomCount, RoomInfo, SnapshotKind, SnapshotSchedule, snapshot,
};
use crate::store::{
    Batch, DeviceProfile, DeviceStatusRow, HealthUpdate, OccupancyRow, SnapshotRow, Store,
    StoreError, Topic,
};
use crate::view::{DeviceView, SnapshotView, to_json};

/// How often `last_seen` values are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Telemetry {
    school: SchoolId,
    health: Health,
    occupancy: Occupancy,
    schedule: SnapshotSchedule,
    /// Changes found while loading, recorded by the first batch.
    pending: Vec<HealthChange>,
    /// Sent to a device when it comes online: its heartbeat interval and press map.
    heartbeat_interval_s: u16,
    press_map: firmware_protocol::PressMap,
    next_flush: UnixMillis,
}

impl Telemetry {
    pub(super) fn load(
        store: &Store,
        config: &Config,
        devices: &HashMap<DeviceId, Arc<DeviceProfile>>,
        now: UnixMillis,
    ) -> Result<Telemetry, StoreError> {
        let mut health = Health::new(config.health.policy);
        let pending = health.load(
            devices
                .values()
                .filter(|d| d.state == crate::store::DeviceState::Active)
                .map(|d| (d.id.clone(), d.last_seen_at, d.online)),
            now,
        );
        let rooms = config
            .rooms
            .iter()
            .map(|r| {
                (
                    r.id,
                    RoomInfo {
                        capacity: r.capacity,
                    },
                )
            })
            .collect();
        let mut occupancy = Occupancy::new(config.occupancy, rooms);
        occupancy.load(store.occupancy()?.into_iter().map(|row| {
            (
                row.room,
                RoomCount {
                    students: row.students,
                    adults: row.adults,
                    confidence_pct: row.confidence_pct,
                    at: row.at,
                    device: row.device,
                    stale: false,
                },
            )
        }));
        let (last, last_full) = store.snapshot_times()?;
        let last = last.and_then(|(at, kind)| Some((at, kind.parse::<SnapshotKind>().ok()?)));
        Ok(Telemetry {
            school: config.school_id.clone(),
            health,
            occupancy,
            schedule: SnapshotSchedule::resume(config.snapshots, last, last_full, now),
            pending,
            heartbeat_interval_s: u16::try_from(config.health.heartbeat_interval.as_secs())
                .unwrap_or(u16::MAX),
            press_map: config.alerts.press_map,
            next_flush: now,
        })
    }

    /// The school.
    pub(super) fn school(&self) -> &SchoolId {
        &self.school
    }

    /// Devices online and offline (never seen counts as offline).
    pub(super) fn device_counts(&self) -> (u32, u32) {
        self.health.counts()
    }

    /// When the engine must next run [`Telemetry::timers`].
    pub(super) fn next_deadline(&self) -> UnixMillis {
        let mut next = self.next_flush.min(self.schedule.next_deadline());
        if let Some(offline) = self.health.next_deadline() {
            next = next.min(offline);
        }
        next
    }

    /// Something the snapshot counts changed (an alert opened or closed).
    pub(super) fn changed(&mut self, now: UnixMillis) {
        self.schedule.changed(now);
    }

    /// A device registered or revoked while the agent runs.
    pub(super) fn registered(&mut self, device: &DeviceProfile) {
        match device.state {
            crate::store::DeviceState::Active => self.health.add(device.id.clone()),
            crate::store::DeviceState::Revoked => self.health.remove(&device.id),
        }
    }

    /// Any frame from `device`: it is alive; a heartbeat carries its battery and signal, an
    /// occupancy report its room's count.
    pub(super) fn uplink(
        &mut self,
        tx: &Batch<'_>,
        device: &DeviceProfile,
        body: &firmware_protocol::Uplink,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        let heartbeat = match body {
            firmware_protocol::Uplink::Heartbeat(h) => Some(h),
            _ => None,
        };
        for change in self.health.seen(&device.id, now, heartbeat) {
            self.record(tx, device, &change, effects)?;
        }
        if let firmware_protocol::Uplink::Occupancy(report) = body {
            self.count(tx, device, report, now)?;
        }
        Ok(())
    }

    /// The device's connection ended with its last will: offline now.
    pub(super) fn last_will(
        &mut self,
        tx: &Batch<'_>,
        device: &DeviceProfile,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        if let Some(change) = self.health.last_will(&device.id, now) {
            tracing::info!(device = %device.id, "device offline: its last will arrived");
            self.record(tx, device, &change, effects)?;
        }
        Ok(())
    }

    fn count(
        &mut self,
        tx: &Batch<'_>,
        device: &DeviceProfile,
        report: &OccupancyReport,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        match self.occupancy.report(&device.id, &device.room, report, now) {
            Ok(changed) => {
                if changed == Changed::Counts {
                    self.schedule.changed(now);
                }
                tx.save_occupancy(&OccupancyRow {
                    room: report.room,
                    device: device.id.clone(),
                    students: report.students,
                    adults: report.adults,
                    confidence_pct: report.confidence_pct,
                    at: now,
                })
            }
            Err(refused) => {
                tracing::warn!(device = %device.id, reason = %refused, "refused an occupancy report");
                Ok(())
            }
        }
    }

    /// Time-driven work: changes found at load, devices gone silent, stale rooms, the
    /// coalesced `last_seen` write, and the snapshot when one is due.
    pub(super) fn timers(
        &mut self,
        tx: &Batch<'_>,
        devices: &HashMap<DeviceId, Arc<DeviceProfile>>,
        active_alerts: u32,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        let mut changes = std::mem::take(&mut self.pending);
        changes.extend(self.health.tick(now));
        for change in &changes {
            if let Some(device) = devices.get(&change.device) {
                self.record(tx, device, change, effects)?;
            }
        }
        let stale: Vec<Label> = self.occupancy.tick(now);
        if !stale.is_empty() {
            tracing::warn!(rooms = ?stale.iter().map(Label::as_str).collect::<Vec<_>>(),
                "room counts are stale: their cameras stopped reporting");
            self.schedule.changed(now);
        }
        if now >= self.next_flush {
            self.flush(tx)?;
            self.next_flush = now.saturating_add(FLUSH_EVERY);
        }
        if let Some(kind) = self.schedule.due(now) {
            self.emit(tx, kind, active_alerts, now, effects)?;
        }
        Ok(())
    }

    /// Writes the health (last_seen above all) that changed since the last write.
    pub(super) fn flush(&mut self, tx: &Batch<'_>) -> Result<(), StoreError> {
        for (id, health) in self.health.take_dirty() {
            tx.save_health(&update(&id, &health))?;
        }
        Ok(())
    }

    fn emit(
        &mut self,
        tx: &Batch<'_>,
        kind: SnapshotKind,
        active_alerts: u32,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        let numbers = snapshot(
            self.school.clone(),
            now,
            &self.occupancy,
            active_alerts,
            self.health.counts(),
        );
        let row = SnapshotRow {
            snapshot: numbers.clone(),
            kind: kind.as_str().to_owned(),
            stale_rooms: self
                .occupancy
                .stale_rooms()
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
        };
        tx.insert_snapshot(&row)?;
        tx.append_outbox(now, &RecordBody::Snapshot(numbers))?;
        let view = SnapshotView::from(&row);
        effects.status_changed = true;
        effects
            .stored
            .push(tx.append_event(now, Topic::Snapshot, to_json(&view))?);
        Ok(())
    }

    /// Writes a health change with its outbox record and stream event.
    fn record(
        &mut self,
        tx: &Batch<'_>,
        device: &DeviceProfile,
        change: &HealthChange,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        tx.save_health(&update(&device.id, &change.health))?;
        tx.append_outbox(change.at, &RecordBody::DeviceHealth(change.to_record()))?;
        let h = &change.health;
        let view = DeviceView::from(&DeviceStatusRow {
            id: device.id.to_string(),
            kind: device.kind.as_str().to_owned(),
            room: device.room.as_str().to_owned(),
            state: device.state.as_str().to_owned(),
            online: h.status == Liveness::Online,
            last_seen_at: h.last_seen,
            battery_mv: h.battery_mv,
            rssi_dbm: h.rssi_dbm,
            firmware: h.firmware.map(firmware_text),
            battery_low: h.battery_low,
        });
        effects
            .stored
            .push(tx.append_event(change.at, Topic::Device, to_json(&view))?);
        if change.change == ChangeKind::Online {
            // A device that (re)appears gets its settings and the time: its configuration may
            // have changed while it was away, and its clock may have drifted (frames carry no
            // device time; the gateway stamps them on arrival).
            let press_map = device
                .press_map
                .map_or(self.press_map, |own| own.over(self.press_map));
            effects.frame(
                &device.id,
                Downlink::Config(DeviceConfig {
                    heartbeat_interval_s: self.heartbeat_interval_s.max(1),
                    press_map,
                }),
            );
            let unix_ms = u64::try_from(change.at.get()).unwrap_or_default();
            effects.frame(&device.id, Downlink::TimeSync(TimeSync { unix_ms }));
        }
        // Online and offline counts are in the snapshot and the status.
        self.schedule.changed(change.at);
        effects.status_changed = true;
        Ok(())
    }
}

fn update<'a>(id: &'a DeviceId, health: &crate::health::DeviceHealth) -> HealthUpdate<'a> {
    HealthUpdate {
        device: id,
        last_seen_at: health.last_seen,
        online: health.status == Liveness::Online,
        battery_mv: health.battery_mv,
        rssi_dbm: health.rssi_dbm,
        firmware: health.firmware.map(firmware_text),
        battery_low: health.battery_low,
    }
}

fn firmware_text(v: firmware_protocol::FirmwareVersion) -> String {
    format!("{}.{}.{}", v.major, v.minor, v.patch)
}
