//! The alert nouns: kind, severity, state, who acted, and the kinds of logged event.
//!
//! All of these cross the wire (inside `sync` records), so their variants are append-only.

use serde::{Deserialize, Serialize};

use super::machine::Feedback;
use crate::ids::DeviceId;
use crate::names::impl_names;

/// What the alert is about. Chosen by the device's button or the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// A staff panic button.
    Panic,
    /// A medical emergency.
    Medical,
    /// Fire or smoke.
    Fire,
    /// A building-wide lockdown.
    Lockdown,
    /// An intruder on the premises.
    Intruder,
}

impl_names!(AlertKind, "alert kind", {
    Panic => "panic",
    Medical => "medical",
    Fire => "fire",
    Lockdown => "lockdown",
    Intruder => "intruder",
});

impl AlertKind {
    /// The severity an alert of this kind starts at. Threats to the whole building start at
    /// the top; a panic or medical call concerns one room until escalation says otherwise.
    pub const fn default_severity(self) -> Severity {
        match self {
            Self::Panic | Self::Medical => Severity::High,
            Self::Fire | Self::Lockdown | Self::Intruder => Severity::Critical,
        }
    }
}

/// How urgent an alert is. Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Informational.
    Low,
    /// Needs attention soon.
    Medium,
    /// Needs attention now.
    High,
    /// Life safety; everyone is notified.
    Critical,
}

impl_names!(Severity, "severity", {
    Low => "low",
    Medium => "medium",
    High => "high",
    Critical => "critical",
});

impl Severity {
    /// One level up, staying at `Critical` once there.
    pub const fn raised(self) -> Self {
        match self {
            Self::Low => Self::Medium,
            Self::Medium => Self::High,
            Self::High | Self::Critical => Self::Critical,
        }
    }
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlertState {
    /// Raised, nobody has responded yet.
    Triggered,
    /// Nobody acknowledged in time; severity was raised and it was announced again.
    Escalated,
    /// Someone responsible has seen it and is responding.
    Acknowledged,
    /// Dealt with. Closed.
    Resolved,
    /// Withdrawn (a mistaken press, or staff judged it a false alarm). Closed.
    Cancelled,
}

impl_names!(AlertState, "alert state", {
    Triggered => "triggered",
    Escalated => "escalated",
    Acknowledged => "acknowledged",
    Resolved => "resolved",
    Cancelled => "cancelled",
});

impl AlertState {
    /// Whether the alert still needs someone: not resolved and not cancelled.
    pub const fn is_open(self) -> bool {
        match self {
            Self::Triggered | Self::Escalated | Self::Acknowledged => true,
            Self::Resolved | Self::Cancelled => false,
        }
    }

    /// What the pressing device should show in this state.
    pub const fn feedback(self) -> Feedback {
        match self {
            Self::Triggered | Self::Escalated => Feedback::Received,
            Self::Acknowledged => Feedback::Acknowledged,
            Self::Resolved => Feedback::Resolved,
            Self::Cancelled => Feedback::Cancelled,
        }
    }
}

/// Through which channel an actor acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Source {
    /// A device button (the presser, or another button in the room).
    Device,
    /// The school's local dashboard, served by the gateway.
    LocalDashboard,
    /// The cloud dashboard, via a sync command.
    Cloud,
    /// The gateway itself (timers, housekeeping).
    System,
}

impl_names!(Source, "source", {
    Device => "device",
    LocalDashboard => "local_dashboard",
    Cloud => "cloud",
    System => "system",
});

/// Who did something to an alert: a channel and a name within it (a device id, a staff
/// login). The name is for the audit log; decisions look only at the source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The channel.
    pub source: Source,
    /// Who, within that channel.
    pub name: String,
}

impl Actor {
    /// An actor from any source.
    pub fn new(source: Source, name: impl Into<String>) -> Self {
        Self {
            source,
            name: name.into(),
        }
    }

    /// A device, named by its id.
    pub fn device(id: &DeviceId) -> Self {
        Self::new(Source::Device, id.as_str())
    }

    /// The gateway itself.
    pub fn system() -> Self {
        Self::new(Source::System, "system")
    }

    /// Whether this is a device rather than a person at a dashboard or the system.
    pub fn is_device(&self) -> bool {
        self.source == Source::Device
    }
}

/// One entry in an alert's append-only log, as stored and synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlertEventKind {
    /// The alert was raised.
    Triggered,
    /// Another press joined the open alert.
    Pressed,
    /// Not acknowledged in time.
    Escalated,
    /// Someone took responsibility.
    Acknowledged,
    /// Dealt with.
    Resolved,
    /// Withdrawn.
    Cancelled,
}

impl_names!(AlertEventKind, "alert event kind", {
    Triggered => "triggered",
    Pressed => "pressed",
    Escalated => "escalated",
    Acknowledged => "acknowledged",
    Resolved => "resolved",
    Cancelled => "cancelled",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_is_ordered_and_raising_saturates() {
        assert!(Severity::Low < Severity::Medium && Severity::High < Severity::Critical);
        let raised: Vec<_> = Severity::ALL.iter().map(|s| s.raised()).collect();
        assert_eq!(
            raised,
            [
                Severity::Medium,
                Severity::High,
                Severity::Critical,
                Severity::Critical
            ]
        );
    }

    #[test]
    fn only_resolved_and_cancelled_are_closed() {
        let open: Vec<_> = AlertState::ALL
            .iter()
            .filter(|s| s.is_open())
            .copied()
            .collect();
        assert_eq!(
            open,
            [
                AlertState::Triggered,
                AlertState::Escalated,
                AlertState::Acknowledged
            ]
        );
    }

    #[test]
    fn default_severities() {
        let got: Vec<_> = AlertKind::ALL
            .iter()
            .map(|k| k.default_severity())
            .collect();
        use Severity::{Critical, High};
        assert_eq!(got, [High, High, Critical, Critical, Critical]);
    }

    #[test]
    fn text_names_round_trip_and_unknown_names_are_typed_errors() {
        fn check<T: Copy + PartialEq + std::fmt::Debug + std::str::FromStr + std::fmt::Display>(
            all: &[T],
        ) where
            T::Err: std::fmt::Debug,
        {
            for v in all {
                assert_eq!(v.to_string().parse::<T>().unwrap(), *v);
            }
        }
        check(AlertKind::ALL);
        check(Severity::ALL);
        check(AlertState::ALL);
        check(Source::ALL);
        check(AlertEventKind::ALL);
        assert_eq!(Source::LocalDashboard.as_str(), "local_dashboard");
        let err = "open".parse::<AlertState>().unwrap_err();
        assert_eq!(err.to_string(), "unknown alert state \"open\"");
    }
}
