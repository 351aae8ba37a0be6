//! What a device tells the gateway: button presses, health, head counts, and cancellations.
//!
//! Variant order and field order are the wire layout (postcard writes the variant index, then
//! the fields in declaration order). Append new variants at the end; never reorder.

use serde::{Deserialize, Serialize};

use crate::label::Label;

/// A message from a device to the gateway.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Uplink {
    /// Variant 0: someone pressed the panic button.
    ButtonPress(ButtonPress),
    /// Variant 1: the device is alive; sent every `heartbeat_interval_s`.
    Heartbeat(Heartbeat),
    /// Variant 2: a camera's head count for one room.
    Occupancy(Occupancy),
    /// Variant 3: the presser withdraws a false alarm.
    CancelRequest(CancelRequest),
}

/// A press of the panic button. The frame carries the pattern, not its meaning: what a pattern
/// raises (panic, medical, ...) is the [`PressMap`](crate::PressMap) in the device's
/// configuration, which a school can change without reflashing buttons.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ButtonPress {
    /// How the button was pressed.
    pub pattern: PressPattern,
    /// The device's press counter since boot. Together with the frame's `boot` it names this
    /// press in [`PressAck`](crate::PressAck) and [`CancelRequest`].
    pub press_seq: u32,
}

/// The ways a button can be pressed.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PressPattern {
    /// Variant 0: one short press.
    Single,
    /// Variant 1: two short presses in quick succession.
    Double,
    /// Variant 2: held down for the long-hold time.
    LongHold,
}

/// Periodic health report.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Heartbeat {
    /// Seconds since this boot.
    pub uptime_s: u32,
    /// The firmware the device is running.
    pub firmware: FirmwareVersion,
    /// Battery voltage in millivolts (mains-powered devices report their supply rail).
    pub battery_mv: u16,
    /// Wi-Fi signal strength in dBm; negative in practice.
    pub rssi_dbm: i8,
    /// Free heap in bytes, to spot leaks in the field before they become resets.
    pub free_heap: u32,
}

/// A semantic firmware version.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FirmwareVersion {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Patch version.
    pub patch: u8,
}

/// A people-counting camera's report for one room.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Occupancy {
    /// The room the camera watches.
    pub room: Label,
    /// Students counted.
    pub students: u16,
    /// Teachers and other adults counted.
    pub adults: u16,
    /// How sure the camera is of the counts, 0 to 100; anything above 100 is refused.
    pub confidence_pct: u8,
}

/// Withdraws the alarm raised by one earlier press of this device.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CancelRequest {
    /// The `boot` of the frame that carried the press.
    pub press_boot: u32,
    /// The press's [`ButtonPress::press_seq`].
    pub press_seq: u32,
}

/// The wire variant index of [`Uplink::Occupancy`]; the decoder needs it to explain a rejected
/// room label (see `codec`). The golden vectors pin it.
pub(crate) const OCCUPANCY_INDEX: u32 = 2;

impl Uplink {
    /// Range checks that postcard's types cannot express; `Err` names the field and the rule.
    pub(crate) fn check(&self) -> Result<(), (&'static str, &'static str)> {
        match self {
            Uplink::Occupancy(o) if o.confidence_pct > 100 => {
                Err(("confidence_pct", "must be between 0 and 100"))
            }
            Uplink::ButtonPress(_)
            | Uplink::Heartbeat(_)
            | Uplink::Occupancy(_)
            | Uplink::CancelRequest(_) => Ok(()),
        }
    }
}
