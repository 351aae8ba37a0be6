//! The agent's local link into rumqttd: one OS thread receives uplinks, one publishes
//! downlinks. Both link calls block, so neither may run on a tokio worker.

use bytes::Bytes;
use firmware_protocol::{Direction, parse_device_topic};
use rumqttd::Notification;
use rumqttd::local::{LinkRx, LinkTx};
use shared::ids::DeviceId;
use tokio::sync::mpsc;

use super::BrokerError;
use crate::bus::{DownlinkError, Outbound, Uplink};

/// The client id of the agent's own link. Devices never have a broker connection of their own,
/// and a device id cannot contain `.` either.
const AGENT_CLIENT_ID: &str = "hallwatch.agent";

/// The agent's subscription: every device's uplinks.
pub(super) const UPLINK_FILTER: &str = "d/+/up";
/// And every device's last will, published by the gate (see [`super::UpTopic::will_of`]).
pub(super) const WILL_FILTER: &str = "d/+/will";

/// Downlinks waiting for the publisher thread before `send` reports the link as full.
const DOWNLINK_BUFFER: usize = 8_192;

/// Where integration messages (alerts and the school's status, JSON) are published. Devices
/// can neither read nor write here: the gate confines them to `d/{own id}/…`.
pub const INTEGRATION_PREFIX: &str = "hallwatch/";

/// Sends frames to devices on `d/{id}/down`, and integration messages under `hallwatch/`.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Downlinks {
    tx: mpsc::Sender<(String, Bytes)>,
}

impl Downlinks {
    /// Queues `frame` for `device`. Never blocks: a full queue is an error the caller decides
    /// about (devices retransmit presses until acknowledged, so an ack can be sent again).
    pub fn send(&self, device: DeviceId, frame: Bytes) -> Result<(), DownlinkError> {
        self.tx
            .try_send((format!("d/{device}/down"), frame))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => DownlinkError::Full(device),
                mpsc::error::TrySendError::Closed(_) => DownlinkError::Closed,
            })
    }

    /// Queues an integration message on `hallwatch/{subtopic}`. Never blocks.
    pub fn announce(&self, subtopic: &str, payload: Bytes) -> Result<(), DownlinkError> {
        self.tx
            .try_send((format!("{INTEGRATION_PREFIX}{subtopic}"), payload))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => DownlinkError::AnnounceFull,
                mpsc::error::TrySendError::Closed(_) => DownlinkError::Closed,
            })
    }
}

impl Outbound for Downlinks {
    fn send(&self, device: DeviceId, frame: Bytes) -> Result<(), DownlinkError> {
        Downlinks::send(self, device, frame)
    }

    fn announce(&self, subtopic: &str, payload: Bytes) -> Result<(), DownlinkError> {
        Downlinks::announce(self, subtopic, payload)
    }
}

/// Attaches the agent's link, subscribes to every device's `up` topic and starts both threads.
pub(super) fn attach(
    broker: &rumqttd::Broker,
    uplink_buffer: usize,
) -> Result<(mpsc::Receiver<Uplink>, Downlinks), BrokerError> {
    let (mut link_tx, link_rx) = broker
        .link(AGENT_CLIENT_ID)
        .map_err(|e| BrokerError::Link(e.to_string()))?;
    for filter in [UPLINK_FILTER, WILL_FILTER] {
        link_tx
            .subscribe(filter)
            .map_err(|e| BrokerError::Link(e.to_string()))?;
    }

    let (uplink_tx, uplinks) = mpsc::channel(uplink_buffer);
    std::thread::Builder::new()
        .name("broker-uplinks".into())
        .spawn(move || receive_uplinks(link_rx, uplink_tx))
        .map_err(BrokerError::Thread)?;

    let (tx, downlink_rx) = mpsc::channel(DOWNLINK_BUFFER);
    std::thread::Builder::new()
        .name("broker-downlinks".into())
        .spawn(move || publish_downlinks(link_tx, downlink_rx))
        .map_err(BrokerError::Thread)?;
    Ok((uplinks, Downlinks { tx }))
}

fn receive_uplinks(mut link_rx: LinkRx, uplinks: mpsc::Sender<Uplink>) {
    loop {
        let notification = match link_rx.recv() {
            Ok(Some(notification)) => notification,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "broker uplink link closed");
                return;
            }
        };
        match notification {
            Notification::Forward(forward) => {
                let topic = &forward.publish.topic;
                let (device_id, last_will) = match will_of(topic) {
                    Some(device) => (Some(device), true),
                    None => (device_of(topic, Direction::Up), false),
                };
                let Some(device_id) = device_id else {
                    // The gate only publishes to a device's own `up` topic, so this is a bug,
                    // not an attack; say so loudly.
                    tracing::error!(topic = ?forward.publish.topic, "uplink on an unexpected topic");
                    continue;
                };
                let uplink = Uplink {
                    device_id,
                    payload: forward.publish.payload,
                    last_will,
                };
                if uplinks.blocking_send(uplink).is_err() {
                    return; // the agent is shutting down
                }
            }
            // After an Unschedule the router stops delivering until told we are ready again.
            Notification::Unschedule => {
                if let Err(e) = link_rx.ready() {
                    tracing::error!(error = %e, "broker uplink link closed");
                    return;
                }
            }
            _ => {}
        }
    }
}

fn publish_downlinks(mut link_tx: LinkTx, mut downlinks: mpsc::Receiver<(String, Bytes)>) {
    while let Some((topic, frame)) = downlinks.blocking_recv() {
        if let Err(e) = link_tx.publish(topic, frame) {
            tracing::error!(error = %e, "broker downlink link closed");
            return;
        }
    }
}

/// The device whose `d/{id}/will` topic this is, if it is one.
fn will_of(topic: &[u8]) -> Option<DeviceId> {
    let topic = std::str::from_utf8(topic).ok()?;
    let id = topic.strip_prefix("d/")?.strip_suffix("/will")?;
    id.parse().ok()
}

/// The device whose `direction` topic this is, if it is one.
pub(super) fn device_of(topic: &[u8], direction: Direction) -> Option<DeviceId> {
    let topic = std::str::from_utf8(topic).ok()?;
    let (id, found) = parse_device_topic(topic)?;
    (found == direction).then(|| id.parse().ok()).flatten()
}
