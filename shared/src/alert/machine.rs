//! The alert state machine: `step(state, event) -> Transition`, pure and total.
//!
//! The gateway's alert actor keeps each open alert's state, feeds every input through
//! [`step`] and executes the returned [`Action`]s in order. Because `step` does no I/O and
//! reads no clock, the actor decides facts about time before calling it: whether the
//! escalation timer fired ([`AlertEvent::EscalationDue`]) and whether a device's cancel
//! arrived within the cancel window (`within_window`).

use std::fmt;

use super::error::{IllegalReason, IllegalTransition};
use super::model::{Actor, AlertEventKind, AlertState};

/// An input to an alert's state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertEvent {
    /// Another press from the same device while the alert is open: joins it.
    Press,
    /// Someone took responsibility.
    Acknowledge {
        /// Who.
        by: Actor,
    },
    /// Someone dealt with it.
    Resolve {
        /// Who.
        by: Actor,
    },
    /// Someone withdrew it. A device may cancel only within the cancel window and before
    /// anyone acknowledged; staff may cancel any open alert.
    Cancel {
        /// Who; a [`crate::alert::Source::Device`] source is the presser.
        by: Actor,
        /// Whether the cancel arrived within the cancel window after the trigger. Only
        /// consulted for devices.
        within_window: bool,
    },
    /// The escalation timer fired: not acknowledged within `escalate_after`.
    EscalationDue,
}

/// The kind of an [`AlertEvent`] without its data, for errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// [`AlertEvent::Press`].
    Press,
    /// [`AlertEvent::Acknowledge`].
    Acknowledge,
    /// [`AlertEvent::Resolve`].
    Resolve,
    /// [`AlertEvent::Cancel`].
    Cancel,
    /// [`AlertEvent::EscalationDue`].
    Escalate,
}

/// What the pressing device should show (its LED pattern).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feedback {
    /// The alert is open and nobody has acknowledged it yet.
    Received,
    /// Someone is responding.
    Acknowledged,
    /// Dealt with.
    Resolved,
    /// Withdrawn.
    Cancelled,
}

/// Something the actor must do after a transition, listed in execution order: changes to the
/// alert first (so the recorded event carries the new values), then the log entry, then
/// effects outside the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Add one to the alert's press count.
    CountPress,
    /// Raise the alert's severity one level ([`crate::alert::Severity::raised`]).
    RaiseSeverity,
    /// Append this entry to the alert's event log (and so to the sync outbox).
    RecordEvent(AlertEventKind),
    /// Send this feedback to the device that raised the alert.
    DeviceFeedback(Feedback),
    /// Notify staff (dashboards, notification channels) of the alert's new state.
    Announce,
}

/// The outcome of a legal event: the new state and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state after the event.
    pub state: AlertState,
    /// The actions, in execution order.
    pub actions: Vec<Action>,
}

/// The first transition of every alert: it starts out [`AlertState::Triggered`].
pub fn trigger() -> Transition {
    Transition {
        state: AlertState::Triggered,
        actions: vec![
            Action::RecordEvent(AlertEventKind::Triggered),
            Action::DeviceFeedback(Feedback::Received),
            Action::Announce,
        ],
    }
}

/// Applies `event` to an alert in `state`.
///
/// Closed alerts refuse everything; see the crate's `tests/alert_transitions.rs` for the
/// complete table.
pub fn step(state: AlertState, event: &AlertEvent) -> Result<Transition, IllegalTransition> {
    use AlertEvent as E;
    use AlertState::{Acknowledged, Cancelled, Escalated, Resolved, Triggered};
    use IllegalReason as R;

    let outcome = match (state, event) {
        (Resolved | Cancelled, _) => Err(R::AlertClosed),
        (_, E::Press) => Ok(Transition {
            state,
            actions: vec![
                Action::CountPress,
                Action::RecordEvent(AlertEventKind::Pressed),
                Action::DeviceFeedback(state.feedback()),
            ],
        }),
        (Triggered, E::EscalationDue) => Ok(Transition {
            state: Escalated,
            actions: vec![
                Action::RaiseSeverity,
                Action::RecordEvent(AlertEventKind::Escalated),
                Action::Announce,
            ],
        }),
        (Escalated, E::EscalationDue) => Err(R::AlreadyEscalated),
        (Acknowledged, E::EscalationDue | E::Acknowledge { .. }) => Err(R::AlreadyAcknowledged),
        (_, E::Acknowledge { .. }) => Ok(settle(Acknowledged, AlertEventKind::Acknowledged)),
        (_, E::Resolve { .. }) => Ok(settle(Resolved, AlertEventKind::Resolved)),
        // The presser's undo exists for mistaken presses; once someone has acknowledged,
        // people are responding and only staff may call them off.
        (Acknowledged, E::Cancel { by, .. }) if by.is_device() => Err(R::StaffOnlyAfterAcknowledge),
        (
            _,
            E::Cancel {
                by,
                within_window: false,
            },
        ) if by.is_device() => Err(R::CancelWindowPassed),
        (_, E::Cancel { .. }) => Ok(settle(Cancelled, AlertEventKind::Cancelled)),
    };
    outcome.map_err(|reason| IllegalTransition {
        from: state,
        verb: event.verb(),
        reason,
    })
}

/// A transition to a state a person decided on: log it, tell the device, tell staff.
fn settle(to: AlertState, logged: AlertEventKind) -> Transition {
    Transition {
        state: to,
        actions: vec![
            Action::RecordEvent(logged),
            Action::DeviceFeedback(to.feedback()),
            Action::Announce,
        ],
    }
}

// === impl AlertEvent ===

impl AlertEvent {
    /// The event's kind without its data.
    pub const fn verb(&self) -> Verb {
        match self {
            Self::Press => Verb::Press,
            Self::Acknowledge { .. } => Verb::Acknowledge,
            Self::Resolve { .. } => Verb::Resolve,
            Self::Cancel { .. } => Verb::Cancel,
            Self::EscalationDue => Verb::Escalate,
        }
    }

    /// Who acted, for events caused by someone.
    pub const fn actor(&self) -> Option<&Actor> {
        match self {
            Self::Acknowledge { by } | Self::Resolve { by } | Self::Cancel { by, .. } => Some(by),
            Self::Press | Self::EscalationDue => None,
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Press => "press",
            Self::Acknowledge => "acknowledge",
            Self::Resolve => "resolve",
            Self::Cancel => "cancel",
            Self::Escalate => "escalate",
        })
    }
}
