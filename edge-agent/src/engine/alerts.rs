//! Alerts in the engine: presses raise or join them, devices and staff move them through
//! `shared::alert::step`, and the escalation timer is derived from stored timestamps, so it
//! survives a restart of the agent.
//!
//! Every legal transition executes its actions in order: the alert's row, its log entry, the
//! outbox record and the stream event are written to the engine's transaction; the device's
//! `PressAck` is queued as an effect that runs only after the commit.

use std::collections::HashMap;

use firmware_protocol::{AckState, ButtonPress, CancelRequest, PressAck};
use shared::UnixMillis;
use shared::alert::{
    Action, Actor, AlertEvent, AlertEventKind, AlertState, Feedback, IllegalTransition, Transition,
    step, trigger,
};
use shared::ids::{AlertId, DeviceId};
use shared::sync::{AlertEventRecord, RecordBody};

use super::effects::Effects;
use crate::config::AlertSettings;
use crate::config::press_map::{kind_of, pattern_name};
use crate::store::{AlertEventRow, AlertRow, Batch, DeviceProfile, PressKey, StoreError, Topic};
use crate::view::{AlertView, to_json};

/// What staff can ask of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffVerb {
    /// Take responsibility.
    Acknowledge,
    /// Mark it dealt with.
    Resolve,
    /// Call it off (a false alarm).
    Cancel,
}

/// Why a staff request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no alert {0}")]
    NotFound(AlertId),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The open alerts, by id and by the device that raised them.
pub(super) struct Alerts {
    settings: AlertSettings,
    open: HashMap<AlertId, AlertRow>,
    by_device: HashMap<DeviceId, AlertId>,
}

impl Alerts {
    pub(super) fn new(settings: AlertSettings) -> Alerts {
        Alerts {
            settings,
            open: HashMap::new(),
            by_device: HashMap::new(),
        }
    }

    /// Replaces the cache with the stored open alerts.
    pub(super) fn load(&mut self, open: Vec<AlertRow>) {
        self.by_device = open
            .iter()
            .filter_map(|a| Some((a.device_id.clone()?, a.id)))
            .collect();
        self.open = open.into_iter().map(|a| (a.id, a)).collect();
    }

    /// The open alerts.
    pub(super) fn open(&self) -> impl Iterator<Item = &AlertRow> {
        self.open.values()
    }

    /// How many alerts are open.
    pub(super) fn open_count(&self) -> usize {
        self.open.len()
    }

    /// When the next unacknowledged alert is due to escalate.
    pub(super) fn next_deadline(&self) -> Option<UnixMillis> {
        self.open
            .values()
            .filter(|a| a.state == AlertState::Triggered)
            .map(|a| self.escalation_time(a))
            .min()
    }

    fn escalation_time(&self, alert: &AlertRow) -> UnixMillis {
        alert
            .created_at
            .saturating_add(self.settings.escalate_after)
    }

    /// A press from `device`. Answered with a `PressAck` naming the press once committed: a
    /// retransmission with the alert's current state, a new press by raising an alert or
    /// joining the device's open one.
    pub(super) fn press(
        &mut self,
        tx: &Batch<'_>,
        device: &DeviceProfile,
        boot: u32,
        press: ButtonPress,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        let key = PressKey {
            device: &device.id,
            boot,
            press_seq: press.press_seq,
        };
        let ack = |state: AckState| PressAck {
            press_boot: boot,
            press_seq: press.press_seq,
            state,
        };
        if let Some(recorded) = tx.press(key)? {
            let state = match recorded {
                Some(id) => self.state_of(tx, &id)?.map(|s| ack_state(s.feedback())),
                None => Some(AckState::Cancelled),
            };
            if let Some(state) = state {
                effects.press_ack(&device.id, ack(state));
            }
            return Ok(());
        }
        let map = device.press_map.map_or(self.settings.press_map, |own| {
            own.over(self.settings.press_map)
        });
        let pattern = pattern_name(press.pattern);
        let Some(kind) = kind_of(&map, press.pattern) else {
            // Configured to raise nothing: recorded, and the device told nothing was raised.
            tx.insert_press(key, pattern, None, now)?;
            tracing::info!(device = %device.id, pattern, "press ignored by the press map");
            effects.press_ack(&device.id, ack(AckState::Cancelled));
            return Ok(());
        };
        if let Some(id) = self.by_device.get(&device.id).copied() {
            let Some(mut alert) = self.open.remove(&id) else {
                self.by_device.remove(&device.id);
                return self.press(tx, device, boot, press, now, effects);
            };
            alert.last_press = Some((boot, press.press_seq));
            tx.insert_press(key, pattern, Some(&id), now)?;
            let result = match step(alert.state, &AlertEvent::Press) {
                Ok(transition) => self.execute(
                    tx,
                    &mut alert,
                    transition,
                    Some(&Actor::device(&device.id)),
                    None,
                    now,
                    effects,
                ),
                // Open alerts accept presses; a refusal here is a bug worth a loud log line.
                Err(e) => {
                    tracing::error!(error = %e, alert = %id, "an open alert refused a press");
                    Ok(())
                }
            };
            self.keep(alert);
            return result;
        }
        let mut alert = AlertRow {
            id: AlertId::new(),
            kind,
            severity: kind.default_severity(),
            state: AlertState::Triggered,
            device_id: Some(device.id.clone()),
            room: Some(device.room.as_str().to_owned()),
            building: device.building.clone(),
            floor: device.floor.clone(),
            press_count: 1,
            last_press: Some((boot, press.press_seq)),
            created_at: now,
            updated_at: now,
            acknowledged_at: None,
            escalated_at: None,
            closed_at: None,
        };
        // The alert row first: the press refers to it.
        tx.save_alert(&alert)?;
        tx.insert_press(key, pattern, Some(&alert.id), now)?;
        tracing::info!(alert = %alert.id, device = %device.id, kind = %kind, room = %device.room, "alert raised");
        let result = self.execute(
            tx,
            &mut alert,
            trigger(),
            Some(&Actor::device(&device.id)),
            None,
            now,
            effects,
        );
        self.keep(alert);
        result
    }

    /// The presser asks to withdraw their press.
    pub(super) fn device_cancel(
        &mut self,
        tx: &Batch<'_>,
        device: &DeviceProfile,
        cancel: CancelRequest,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        let key = PressKey {
            device: &device.id,
            boot: cancel.press_boot,
            press_seq: cancel.press_seq,
        };
        let ack = |state: AckState| PressAck {
            press_boot: cancel.press_boot,
            press_seq: cancel.press_seq,
            state,
        };
        let Some(Some(id)) = tx.press(key)? else {
            tracing::warn!(device = %device.id, boot = cancel.press_boot, seq = cancel.press_seq,
                "refused a cancel for a press that raised no alert");
            return Ok(());
        };
        let Some(mut alert) = self.open.remove(&id) else {
            // Already closed: tell the device how it ended.
            if let Some(state) = self.state_of(tx, &id)? {
                effects.press_ack(&device.id, ack(ack_state(state.feedback())));
            }
            return Ok(());
        };
        let within_window = now
            .duration_since(alert.created_at)
            .is_none_or(|age| age <= self.settings.cancel_window);
        let actor = Actor::device(&device.id);
        let event = AlertEvent::Cancel {
            by: actor.clone(),
            within_window,
        };
        let result = match step(alert.state, &event) {
            Ok(transition) => {
                self.execute(tx, &mut alert, transition, Some(&actor), None, now, effects)
            }
            Err(e) => {
                tracing::info!(alert = %id, device = %device.id, reason = %e, "refused a cancel from the device");
                effects.press_ack(&device.id, ack(ack_state(alert.state.feedback())));
                Ok(())
            }
        };
        self.keep(alert);
        result
    }

    /// Staff act on an alert from a dashboard (or the cloud). The outer error is the
    /// database's; the inner one is the answer for the person.
    #[allow(clippy::too_many_arguments)] // one call site; the arguments are the request's fields
    pub(super) fn staff(
        &mut self,
        tx: &Batch<'_>,
        id: &AlertId,
        verb: StaffVerb,
        actor: &Actor,
        note: Option<&str>,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<Result<AlertView, CommandError>, StoreError> {
        let Some(mut alert) = self.open.remove(id) else {
            return Ok(Err(match self.state_of(tx, id)? {
                None => CommandError::NotFound(*id),
                Some(state) => {
                    let event = staff_event(verb, actor);
                    match step(state, &event) {
                        Err(e) => CommandError::Illegal(e),
                        Ok(_) => CommandError::Internal("the alert is not loaded".into()),
                    }
                }
            }));
        };
        let event = staff_event(verb, actor);
        let outcome = match step(alert.state, &event) {
            Ok(transition) => {
                tracing::info!(alert = %id, to = %transition.state, by = %actor.name,
                    source = %actor.source, "alert changed by staff");
                match self.execute(tx, &mut alert, transition, Some(actor), note, now, effects) {
                    Ok(()) => Ok(Ok(AlertView::from(&alert))),
                    Err(e) => Err(e),
                }
            }
            Err(e) => {
                tracing::info!(alert = %id, by = %actor.name, reason = %e, "refused a staff action");
                Ok(Err(CommandError::Illegal(e)))
            }
        };
        self.keep(alert);
        outcome
    }

    /// Escalates every alert whose time has come.
    pub(super) fn escalate_due(
        &mut self,
        tx: &Batch<'_>,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        let due: Vec<AlertId> = self
            .open
            .values()
            .filter(|a| a.state == AlertState::Triggered && self.escalation_time(a) <= now)
            .map(|a| a.id)
            .collect();
        for id in due {
            let Some(mut alert) = self.open.remove(&id) else {
                continue;
            };
            let result = match step(alert.state, &AlertEvent::EscalationDue) {
                Ok(transition) => {
                    tracing::warn!(alert = %id, "alert not acknowledged in time: escalated");
                    self.execute(tx, &mut alert, transition, None, None, now, effects)
                }
                Err(e) => {
                    tracing::error!(alert = %id, error = %e, "escalation refused");
                    Ok(())
                }
            };
            self.keep(alert);
            result?;
        }
        Ok(())
    }

    /// Runs a transition's actions on `alert`.
    #[allow(clippy::too_many_arguments)] // the transition's context, passed through once
    fn execute(
        &self,
        tx: &Batch<'_>,
        alert: &mut AlertRow,
        transition: Transition,
        actor: Option<&Actor>,
        note: Option<&str>,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        alert.state = transition.state;
        for action in transition.actions {
            match action {
                Action::CountPress => alert.press_count = alert.press_count.saturating_add(1),
                Action::RaiseSeverity => alert.severity = alert.severity.raised(),
                Action::RecordEvent(event) => {
                    record(tx, alert, event, actor, note, now, effects)?;
                }
                Action::DeviceFeedback(feedback) => {
                    if let (Some(device), Some((boot, seq))) = (&alert.device_id, alert.last_press)
                    {
                        effects.press_ack(
                            device,
                            PressAck {
                                press_boot: boot,
                                press_seq: seq,
                                state: ack_state(feedback),
                            },
                        );
                    }
                }
                // Recording already put the change on the dashboards' stream.
                Action::Announce => {}
            }
        }
        Ok(())
    }

    /// The alert's current state: from the cache, else from the database (closed alerts).
    fn state_of(&self, tx: &Batch<'_>, id: &AlertId) -> Result<Option<AlertState>, StoreError> {
        if let Some(alert) = self.open.get(id) {
            return Ok(Some(alert.state));
        }
        Ok(tx.alert(id)?.map(|a| a.state))
    }

    /// Puts `alert` back into the cache if it is still open.
    fn keep(&mut self, alert: AlertRow) {
        match (&alert.device_id, alert.state.is_open()) {
            (Some(device), true) => {
                self.by_device.insert(device.clone(), alert.id);
            }
            (Some(device), false) => {
                self.by_device.remove(device);
            }
            (None, _) => {}
        }
        if alert.state.is_open() {
            self.open.insert(alert.id, alert);
        }
    }
}

/// Appends `event` to the alert's log, with its outbox record and stream event, and saves the
/// alert's row.
fn record(
    tx: &Batch<'_>,
    alert: &mut AlertRow,
    event: AlertEventKind,
    actor: Option<&Actor>,
    note: Option<&str>,
    now: UnixMillis,
    effects: &mut Effects,
) -> Result<(), StoreError> {
    // Strictly increasing, so a client keeping the newer of two copies never keeps the older
    // (two changes can share a millisecond).
    if event != AlertEventKind::Triggered {
        alert.updated_at = now.max(UnixMillis::new(alert.updated_at.get().saturating_add(1)));
    }
    match event {
        AlertEventKind::Acknowledged => alert.acknowledged_at = Some(now),
        AlertEventKind::Escalated => alert.escalated_at = Some(now),
        AlertEventKind::Resolved | AlertEventKind::Cancelled => alert.closed_at = Some(now),
        AlertEventKind::Triggered | AlertEventKind::Pressed => {}
    }
    tx.save_alert(alert)?;
    tx.append_alert_event(&AlertEventRow {
        id: 0,
        alert_id: alert.id,
        at: now,
        event,
        state: alert.state,
        severity: alert.severity,
        press_count: alert.press_count,
        actor: actor.cloned(),
        note: note.map(str::to_owned),
    })?;
    tx.append_outbox(
        now,
        &RecordBody::AlertEvent(AlertEventRecord {
            alert_id: alert.id,
            kind: alert.kind,
            severity: alert.severity,
            state: alert.state,
            event,
            device_id: alert.device_id.clone(),
            room: alert.room.clone(),
            actor: actor.cloned(),
            press_count: alert.press_count,
        }),
    )?;
    let json = to_json(&AlertView::from(&*alert));
    effects
        .announcements
        .push((format!("alerts/{}", alert.id), json.clone()));
    effects.status_changed = true;
    effects
        .stored
        .push(tx.append_event(now, Topic::Alert, json)?);
    Ok(())
}

fn staff_event(verb: StaffVerb, actor: &Actor) -> AlertEvent {
    let by = actor.clone();
    match verb {
        StaffVerb::Acknowledge => AlertEvent::Acknowledge { by },
        StaffVerb::Resolve => AlertEvent::Resolve { by },
        StaffVerb::Cancel => AlertEvent::Cancel {
            by,
            within_window: true,
        },
    }
}

fn ack_state(feedback: Feedback) -> AckState {
    match feedback {
        Feedback::Received => AckState::Received,
        Feedback::Acknowledged => AckState::Acknowledged,
        Feedback::Resolved => AckState::Resolved,
        Feedback::Cancelled => AckState::Cancelled,
    }
}
