//! [`IllegalTransition`]: an event the state machine refused, and why.
//!
//! Refusals are ordinary (a second acknowledge from another dashboard, a late cancel from a
//! button), so the error carries enough structure for a caller to answer the person politely
//! and for a log line to say exactly what happened.

use thiserror::Error;

use super::machine::Verb;
use super::model::AlertState;

/// An event that is not allowed in the alert's current state. The alert is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("cannot {verb} an alert that is {from}: {reason}")]
pub struct IllegalTransition {
    /// The state the alert was (and still is) in.
    pub from: AlertState,
    /// What was attempted.
    pub verb: Verb,
    /// Why it was refused.
    pub reason: IllegalReason,
}

/// Why an event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum IllegalReason {
    /// The alert is resolved or cancelled; nothing changes it any more.
    #[error("it is closed")]
    AlertClosed,
    /// Someone already acknowledged it (so it cannot be acknowledged or escalated again).
    #[error("it has already been acknowledged")]
    AlreadyAcknowledged,
    /// It was already escalated once; escalation happens once per alert.
    #[error("it has already been escalated")]
    AlreadyEscalated,
    /// A device tried to cancel after the cancel window.
    #[error("the window for cancelling from the device has passed")]
    CancelWindowPassed,
    /// A device tried to cancel an alert someone is already responding to.
    #[error("once acknowledged, only staff can cancel it")]
    StaffOnlyAfterAcknowledge,
}
