//! What the gateway tells a device: the state of its presses, its configuration, and the time.
//!
//! Variant order and field order are the wire layout (postcard writes the variant index, then
//! the fields in declaration order). Append new variants at the end; never reorder.

use serde::{Deserialize, Serialize};

/// A message from the gateway to a device.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Downlink {
    /// Variant 0: where one press stands; drives the button's LED.
    PressAck(PressAck),
    /// Variant 1: the device's settings; sent on connect and whenever they change.
    Config(DeviceConfig),
    /// Variant 2: wall-clock time, since an ESP32 has no battery-backed clock.
    TimeSync(TimeSync),
}

/// The gateway's answer to a [`ButtonPress`](crate::ButtonPress). Sent on every change of
/// state, and again for a retransmitted press, so the presser always sees the latest state.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PressAck {
    /// The device boot the press came from (the uplink frame's `boot`).
    pub press_boot: u32,
    /// The press's [`ButtonPress::press_seq`](crate::ButtonPress::press_seq).
    pub press_seq: u32,
    /// Where the alert raised by the press stands.
    pub state: AckState,
}

/// Where an alert stands, as far as the presser's LED is concerned.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckState {
    /// Variant 0: the gateway has the press and raised an alert.
    Received,
    /// Variant 1: a person (office, responder) has acknowledged the alert.
    Acknowledged,
    /// Variant 2: the alert is over.
    Resolved,
    /// Variant 3: the alert was cancelled as a false alarm.
    Cancelled,
}

/// A device's settings.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceConfig {
    /// Seconds between heartbeats; at least 1 (zero is refused, it would mean a busy loop).
    pub heartbeat_interval_s: u16,
    /// What each press pattern raises.
    pub press_map: PressMap,
}

/// What each [`PressPattern`](crate::PressPattern) raises.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PressMap {
    /// Action for [`PressPattern::Single`](crate::PressPattern::Single).
    pub single: PressAction,
    /// Action for [`PressPattern::Double`](crate::PressPattern::Double).
    pub double: PressAction,
    /// Action for [`PressPattern::LongHold`](crate::PressPattern::LongHold).
    pub long_hold: PressAction,
}

/// The kinds of alert a press can raise.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PressAction {
    /// Variant 0: the pattern does nothing (e.g. single presses, to avoid accidental alarms).
    Ignore,
    /// Variant 1: general emergency.
    Panic,
    /// Variant 2: medical emergency.
    Medical,
    /// Variant 3: fire.
    Fire,
    /// Variant 4: lockdown.
    Lockdown,
    /// Variant 5: intruder on site.
    Intruder,
}

/// The gateway's wall-clock time.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeSync {
    /// Milliseconds since the Unix epoch, UTC.
    pub unix_ms: u64,
}

impl Downlink {
    /// Range checks that postcard's types cannot express; `Err` names the field and the rule.
    pub(crate) fn check(&self) -> Result<(), (&'static str, &'static str)> {
        match self {
            Downlink::Config(c) if c.heartbeat_interval_s == 0 => {
                Err(("heartbeat_interval_s", "must be at least 1"))
            }
            Downlink::PressAck(_) | Downlink::Config(_) | Downlink::TimeSync(_) => Ok(()),
        }
    }
}
