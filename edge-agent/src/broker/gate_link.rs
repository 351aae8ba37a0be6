//! The gate's local link into rumqttd: how devices' messages enter and leave the broker.
//!
//! Devices do not get a broker connection each (rumqttd keeps ~45 KB of state per connection,
//! see ARCHITECTURE.md); the gate speaks MQTT to them itself and moves their messages through
//! this one link. Its calls block, so it has two OS threads: one publishes uplinks handed over
//! through a bounded channel, one receives every `d/+/down` frame and every integration message
//! (`hallwatch/#`) and gives it to the gate.

use std::fmt;

use bytes::Bytes;
use firmware_protocol::Direction;
use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use shared::ids::DeviceId;
use tokio::sync::mpsc;

use super::BrokerError;
use super::link::{INTEGRATION_PREFIX, device_of};

/// The client id of the gate's link; no device can have it (device ids cannot contain `.`).
const GATE_CLIENT_ID: &str = "hallwatch.gate";

/// The gate's subscription: every device's downlinks.
pub(super) const DOWNLINK_FILTER: &str = "d/+/down";
/// And every integration message the agent publishes (see [`super::Downlinks::announce`]).
pub(super) const INTEGRATION_FILTER: &str = "hallwatch/#";

/// A device's `d/{id}/up` topic, made once per connection and shared by its publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpTopic(Bytes);

impl UpTopic {
    /// The up topic of `device`.
    pub fn of(device: &DeviceId) -> UpTopic {
        UpTopic(Bytes::from(format!("d/{device}/up")))
    }

    /// Where the gate publishes `device`'s MQTT last will: `d/{id}/will`, a topic only the
    /// agent's link reads (devices can neither publish nor subscribe to it), so the engine
    /// tells a will from a frame the device sent.
    pub fn will_of(device: &DeviceId) -> UpTopic {
        UpTopic(Bytes::from(format!("d/{device}/will")))
    }

    /// The topic as text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The gate's link, attached and subscribed but not yet running; see [`GateLink::start`].
pub struct GateLink {
    tx: LinkTx,
    rx: LinkRx,
}

impl fmt::Debug for GateLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateLink").finish_non_exhaustive()
    }
}

/// Hands device uplinks to the link's publisher thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UplinkPublisher {
    tx: mpsc::Sender<(Bytes, Bytes)>,
}

/// The broker link is gone (the broker failed); nothing more can be published.
#[derive(Debug, thiserror::Error)]
#[error("the broker link is closed")]
pub struct LinkClosed;

impl UplinkPublisher {
    /// Queues `payload` for `topic`, waiting while the queue is full: a device whose uplinks
    /// cannot be taken waits here, and the gate stops reading its socket meanwhile.
    pub async fn publish(&self, topic: &UpTopic, payload: Bytes) -> Result<(), LinkClosed> {
        self.tx
            .send((topic.0.clone(), payload))
            .await
            .map_err(|_| LinkClosed)
    }
}

impl GateLink {
    /// Attaches the gate's link and subscribes it to every device's `down` topic and to the
    /// integration messages. Messages that arrive before [`start`](GateLink::start) wait in the
    /// link.
    pub(super) fn attach(broker: &rumqttd::Broker) -> Result<GateLink, BrokerError> {
        let (mut tx, rx) = broker
            .link(GATE_CLIENT_ID)
            .map_err(|e| BrokerError::Link(e.to_string()))?;
        for filter in [DOWNLINK_FILTER, INTEGRATION_FILTER] {
            tx.subscribe(filter)
                .map_err(|e| BrokerError::Link(e.to_string()))?;
        }
        Ok(GateLink { tx, rx })
    }

    /// Starts both threads. On the receiving thread, `deliver` runs for every `d/{id}/down`
    /// frame and `announce` for every `hallwatch/…` message (topic, payload); neither may
    /// block. Uplinks queue at most `uplink_buffer` frames.
    pub fn start<F, A>(
        self,
        uplink_buffer: usize,
        deliver: F,
        announce: A,
    ) -> Result<UplinkPublisher, BrokerError>
    where
        F: Fn(DeviceId, Bytes) + Send + 'static,
        A: Fn(String, Bytes) + Send + 'static,
    {
        let GateLink { tx, rx } = self;
        std::thread::Builder::new()
            .name("gate-downlinks".into())
            .spawn(move || receive_downlinks(rx, deliver, announce))
            .map_err(BrokerError::Thread)?;
        let (uplinks, queue) = mpsc::channel(uplink_buffer.max(1));
        std::thread::Builder::new()
            .name("gate-uplinks".into())
            .spawn(move || publish_uplinks(tx, queue))
            .map_err(BrokerError::Thread)?;
        Ok(UplinkPublisher { tx: uplinks })
    }
}

fn publish_uplinks(mut link_tx: LinkTx, mut queue: mpsc::Receiver<(Bytes, Bytes)>) {
    while let Some((topic, payload)) = queue.blocking_recv() {
        if let Err(e) = link_tx.publish(topic, payload) {
            tracing::error!(error = %e, "gate uplink link closed");
            return;
        }
    }
}

fn receive_downlinks<F, A>(mut link_rx: LinkRx, deliver: F, announce: A)
where
    F: Fn(DeviceId, Bytes),
    A: Fn(String, Bytes),
{
    loop {
        let notification = match link_rx.recv() {
            Ok(Some(notification)) => notification,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "gate downlink link closed");
                return;
            }
        };
        match notification {
            Notification::Forward(forward) => {
                let publish = forward.publish;
                if publish.topic.starts_with(INTEGRATION_PREFIX.as_bytes()) {
                    match String::from_utf8(publish.topic.to_vec()) {
                        Ok(topic) => announce(topic, publish.payload),
                        Err(_) => {
                            tracing::error!(topic = ?publish.topic, "integration topic is not UTF-8")
                        }
                    }
                    continue;
                }
                match device_of(&publish.topic, Direction::Down) {
                    Some(device) => deliver(device, publish.payload),
                    // Only the agent publishes to `down` topics, always with a valid id.
                    None => {
                        tracing::error!(topic = ?publish.topic, "downlink on an unexpected topic")
                    }
                }
            }
            // After an Unschedule the router stops delivering until told we are ready again.
            Notification::Unschedule => {
                if let Err(e) = link_rx.ready() {
                    tracing::error!(error = %e, "gate downlink link closed");
                    return;
                }
            }
            _ => {}
        }
    }
}
