//! What passes between the device side and the engine, and nothing of how: an [`Uplink`] is a
//! frame a device sent, an [`Outbound`] takes frames to devices and messages to integrations.
//!
//! The broker (`broker`, the only user of rumqttd) implements [`Outbound`] and produces
//! uplinks; the engine names only this module, so it neither knows nor cares that rumqttd
//! carries its traffic, and its tests capture what it sends with an [`Outbound`] of their own.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use shared::ids::DeviceId;

/// One frame a device published on its `up` topic.
#[derive(Debug, Clone)]
pub struct Uplink {
    /// The publishing device (from the topic, which the gate pins to the certificate's id).
    pub device_id: DeviceId,
    /// The frame's bytes, not yet decoded (for a last will: whatever the device set).
    pub payload: Bytes,
    /// Whether this is the device's MQTT last will, published by the gate when its session
    /// ended without DISCONNECT, rather than a frame it sent.
    pub last_will: bool,
}

/// Where the engine's frames to devices and messages to integrations go. Never blocks.
pub trait Outbound: Send + Sync + fmt::Debug {
    /// Queues `frame` for `device`. A full queue is an error the caller decides about (devices
    /// retransmit presses until acknowledged, so an ack can be sent again).
    fn send(&self, device: DeviceId, frame: Bytes) -> Result<(), DownlinkError>;

    /// Queues an integration message on `hallwatch/{subtopic}`.
    fn announce(&self, subtopic: &str, payload: Bytes) -> Result<(), DownlinkError>;
}

/// An [`Outbound`] shared by whoever sends.
pub type SharedOutbound = Arc<dyn Outbound>;

/// Why a downlink was not queued.
#[derive(Debug, thiserror::Error)]
pub enum DownlinkError {
    #[error("the downlink queue is full; the frame to {0} was dropped")]
    Full(DeviceId),
    #[error("the downlink queue is full; an integration message was dropped")]
    AnnounceFull,
    #[error("the broker link is closed")]
    Closed,
}
