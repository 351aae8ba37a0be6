//! The engine's cached state and the dispatch of each input: an uplink to health, counts and
//! alerts; a request to the alert it names; the timers (escalation, liveness, snapshots,
//! housekeeping) when one is due. Every call takes the batch's transaction and the time the
//! batch was taken at, and queues what must happen after the commit as [`Effects`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use firmware_protocol::{Uplink as UplinkBody, decode_uplink};
use shared::UnixMillis;
use shared::alert::Actor;
use shared::ids::{AlertId, DeviceId};
use tokio::sync::broadcast;

use super::alerts::Alerts;
use super::cloud::outbox_upkeep;
use super::effects::Effects;
use super::telemetry::Telemetry;
use super::{CommandError, OutboxSignals, Request, StaffVerb};
use crate::bus::{SharedOutbound, Uplink};
use crate::config::{Config, SyncSettings};
use crate::metrics::{Metrics, UplinkKind};
use crate::store::{AlertRow, Batch, DeviceProfile, DeviceState, Store, StoreError, StoredEvent};
use crate::view::{AlertView, StatusView, to_json};

/// The most often `hallwatch/status` is published (every alert change is on its own topic at
/// once; the summary of a school with many open alerts is large, and a burst of changes must
/// not become a burst of summaries).
pub(super) const STATUS_EVERY: Duration = Duration::from_secs(1);
/// The most open alerts listed in `hallwatch/status`; `active_alerts` counts them all.
const STATUS_ALERTS: usize = 100;

/// How often old stream events, snapshots and presses are deleted.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3_600);
/// How long the stream's event log reaches back (a dashboard offline longer reloads), and the
/// fewest events kept regardless.
const KEEP_EVENTS_FOR: Duration = Duration::from_secs(7 * 24 * 3_600);
const KEEP_EVENTS_AT_LEAST: u32 = 10_000;
/// How long snapshots and press records are kept on the gateway (the cloud keeps the history).
const KEEP_HISTORY_FOR: Duration = Duration::from_secs(31 * 24 * 3_600);

/// How often the outbox is held to its policy (thinning, disk budget).
const OUTBOX_UPKEEP_EVERY: Duration = Duration::from_secs(60);

/// How often the device profiles are re-read, to notice devices revoked while the agent runs
/// (new devices are noticed at their first frame).
const REFRESH_DEVICES_EVERY: Duration = Duration::from_secs(30);

/// The engine's cached state.
pub(super) struct State {
    alerts: Alerts,
    pub(super) telemetry: Telemetry,
    /// Shared, so the hot path (every uplink) takes a reference count, not a copy.
    devices: HashMap<DeviceId, Arc<DeviceProfile>>,
    outbound: SharedOutbound,
    events: broadcast::Sender<StoredEvent>,
    pub(super) outbox: Arc<OutboxSignals>,
    /// The outbox's retention policy (`[sync]`).
    sync: SyncSettings,
    next_outbox_upkeep: UnixMillis,
    next_refresh: UnixMillis,
    next_housekeeping: UnixMillis,
    /// `hallwatch/status` needs publishing, and not before `next_status`: each alert change
    /// has its own message at once, the summary follows at most once per [`STATUS_EVERY`].
    pub(super) status_dirty: bool,
    pub(super) next_status: UnixMillis,
    /// Uplinks are counted here, once each, as they are applied.
    pub(super) metrics: Arc<Metrics>,
}

impl State {
    pub(super) fn load(
        store: &Store,
        config: &Config,
        outbound: SharedOutbound,
        events: broadcast::Sender<StoredEvent>,
        outbox: Arc<OutboxSignals>,
        metrics: Arc<Metrics>,
        now: UnixMillis,
    ) -> Result<State, StoreError> {
        let devices = profiles(store)?;
        let mut state = State {
            alerts: Alerts::new(config.alerts.clone()),
            telemetry: Telemetry::load(store, config, &devices, now)?,
            devices,
            outbound,
            events,
            outbox,
            sync: config.sync,
            next_outbox_upkeep: now,
            next_refresh: now.saturating_add(REFRESH_DEVICES_EVERY),
            next_housekeeping: now,
            status_dirty: true,
            next_status: now,
            metrics,
        };
        state.alerts.load(store.open_alerts()?);
        Ok(state)
    }

    /// An empty list of effects for the next batch.
    pub(super) fn effects(&self) -> Effects {
        Effects::new(Arc::clone(&self.outbound), self.events.clone())
    }

    /// Re-reads what a failed transaction may have left the cache disagreeing with. Health and
    /// counts are re-derived from the next uplinks; alerts must match the database exactly.
    pub(super) fn reload(&mut self, store: &Store) -> Result<(), StoreError> {
        self.alerts.load(store.open_alerts()?);
        self.devices = profiles(store)?;
        Ok(())
    }

    /// The school summary integrations read on `hallwatch/status`: the counts, and the most
    /// severe open alerts (then the oldest), at most [`STATUS_ALERTS`] of them.
    pub(super) fn status(&self, now: UnixMillis) -> String {
        let mut open: Vec<&AlertRow> = self.alerts.open().collect();
        open.sort_by_key(|a| (std::cmp::Reverse(a.severity), a.created_at));
        let active = u32::try_from(open.len()).unwrap_or(u32::MAX);
        let alerts: Vec<AlertView> = open
            .into_iter()
            .take(STATUS_ALERTS)
            .map(AlertView::from)
            .collect();
        let (online, offline) = self.telemetry.device_counts();
        let highest = self.alerts.open().map(|a| a.severity).max();
        to_json(&StatusView {
            school_id: self.telemetry.school().to_string(),
            at: now.get(),
            active_alerts: active,
            highest_severity: highest.map(|s| s.as_str()),
            alerts,
            devices_online: online,
            devices_offline: offline,
        })
    }

    pub(super) fn next_deadline(&self) -> Option<UnixMillis> {
        let mut next = self
            .telemetry
            .next_deadline()
            .min(self.next_refresh)
            .min(self.next_housekeeping)
            .min(self.next_outbox_upkeep);
        if self.status_dirty {
            next = next.min(self.next_status);
        }
        Some(self.alerts.next_deadline().map_or(next, |a| a.min(next)))
    }

    /// The device's profile, re-read from the database once when it is not cached (devices
    /// are registered by `edge-agent device add` while the agent runs).
    fn device(
        &mut self,
        tx: &Batch<'_>,
        id: &DeviceId,
    ) -> Result<Option<Arc<DeviceProfile>>, StoreError> {
        if !self.devices.contains_key(id)
            && let Some(profile) = tx.device_profile(id)?
        {
            self.telemetry.registered(&profile);
            self.devices.insert(id.clone(), Arc::new(profile));
        }
        Ok(self.devices.get(id).cloned())
    }

    pub(super) fn uplink(
        &mut self,
        tx: &Batch<'_>,
        uplink: &Uplink,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        let Some(device) = self.device(tx, &uplink.device_id)? else {
            tracing::warn!(device = %uplink.device_id, "refused an uplink from an unregistered device");
            return Ok(());
        };
        if device.state == DeviceState::Revoked {
            tracing::warn!(device = %device.id, "refused an uplink from a revoked device");
            return Ok(());
        }
        if uplink.last_will {
            self.metrics.uplink(UplinkKind::LastWill);
            return self.telemetry.last_will(tx, &device, now, effects);
        }
        let frame = match decode_uplink(&uplink.payload) {
            Ok(frame) => frame,
            Err(e) => {
                self.metrics.uplink(UplinkKind::Undecodable);
                // Not even proof of life: a device that sends garbage is not healthy.
                tracing::warn!(device = %device.id, error = %e, "refused an undecodable uplink");
                return Ok(());
            }
        };
        self.metrics.uplink(match frame.body {
            UplinkBody::ButtonPress(_) => UplinkKind::ButtonPress,
            UplinkBody::CancelRequest(_) => UplinkKind::CancelRequest,
            UplinkBody::Heartbeat(_) => UplinkKind::Heartbeat,
            UplinkBody::Occupancy(_) => UplinkKind::Occupancy,
        });
        self.telemetry
            .uplink(tx, &device, &frame.body, now, effects)?;
        let open_before = self.alerts.open_count();
        match frame.body {
            UplinkBody::ButtonPress(press) => {
                self.alerts
                    .press(tx, &device, frame.boot, press, now, effects)?;
            }
            UplinkBody::CancelRequest(cancel) => {
                self.alerts
                    .device_cancel(tx, &device, cancel, now, effects)?;
            }
            UplinkBody::Heartbeat(_) | UplinkBody::Occupancy(_) => {}
        }
        if self.alerts.open_count() != open_before {
            self.telemetry.changed(now);
        }
        Ok(())
    }

    pub(super) fn request(
        &mut self,
        tx: &Batch<'_>,
        index: usize,
        request: &Request,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        match request {
            Request::Transition {
                alert,
                verb,
                actor,
                note,
                ..
            } => {
                let outcome = self.staff(tx, alert, *verb, actor, note.as_deref(), now, effects)?;
                effects.replies.push((index, outcome));
                Ok(())
            }
        }
    }

    /// A person's acknowledge, resolve or cancel, from the dashboard or the cloud; a change in
    /// the number of open alerts is a change for the next snapshot.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn staff(
        &mut self,
        tx: &Batch<'_>,
        alert: &AlertId,
        verb: StaffVerb,
        actor: &Actor,
        note: Option<&str>,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<Result<AlertView, CommandError>, StoreError> {
        let open_before = self.alerts.open_count();
        let outcome = self
            .alerts
            .staff(tx, alert, verb, actor, note, now, effects)?;
        if self.alerts.open_count() != open_before {
            self.telemetry.changed(now);
        }
        Ok(outcome)
    }

    pub(super) fn timers(
        &mut self,
        tx: &Batch<'_>,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        if now >= self.next_refresh {
            for (id, profile) in tx.device_profiles()?.into_iter().map(|d| (d.id.clone(), d)) {
                if self.devices.get(&id).map(|d| d.state) != Some(profile.state) {
                    self.telemetry.registered(&profile);
                }
                self.devices.insert(id, Arc::new(profile));
            }
            self.next_refresh = now.saturating_add(REFRESH_DEVICES_EVERY);
        }
        if now >= self.next_housekeeping {
            housekeeping(tx, now)?;
            self.next_housekeeping = now.saturating_add(HOUSEKEEPING_EVERY);
        }
        if now >= self.next_outbox_upkeep {
            // A failure here (a damaged row, say) is logged and undone; it must not cost
            // the batch its presses.
            match tx.attempt(|tx| outbox_upkeep(tx, &self.sync, now))? {
                Ok(Some(event)) => effects.stored.push(event),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "outbox upkeep failed; will try again"),
            }
            self.next_outbox_upkeep = now.saturating_add(OUTBOX_UPKEEP_EVERY);
        }
        self.alerts.escalate_due(tx, now, effects)?;
        let active = u32::try_from(self.alerts.open_count()).unwrap_or(u32::MAX);
        self.telemetry
            .timers(tx, &self.devices, active, now, effects)
    }
}

/// Deletes what the gateway no longer needs: stream events past their reach, snapshots and
/// press records past theirs. Alerts and their logs are kept.
fn housekeeping(tx: &Batch<'_>, now: UnixMillis) -> Result<(), StoreError> {
    let cutoff = |keep: Duration| UnixMillis::new(now.get().saturating_sub(millis(keep)));
    let events = tx.prune_events(cutoff(KEEP_EVENTS_FOR), KEEP_EVENTS_AT_LEAST)?;
    let (snapshots, presses) = tx.prune_history(cutoff(KEEP_HISTORY_FOR))?;
    if events + snapshots + presses > 0 {
        tracing::info!(events, snapshots, presses, "pruned old records");
    }
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn profiles(store: &Store) -> Result<HashMap<DeviceId, Arc<DeviceProfile>>, StoreError> {
    Ok(store
        .device_profiles()?
        .into_iter()
        .map(|d| (d.id.clone(), Arc::new(d)))
        .collect())
}
