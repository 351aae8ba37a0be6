//! What a committed batch does, in order: frames to devices, integration messages, events to
//! the dashboards' streams, and the answers to whoever waits. Nothing here runs before the
//! batch's transaction has committed, so nobody hears of state that is not on disk.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use firmware_protocol::{Downlink, Frame, MAX_FRAME_LEN, PressAck, encode_downlink};
use shared::ids::DeviceId;
use tokio::sync::broadcast;

use super::{CommandError, Input, Request};
use crate::bus::SharedOutbound;
use crate::store::StoredEvent;
use crate::view::AlertView;

/// What a committed batch must do, in order: frames to devices, events to streams, replies.
pub(super) struct Effects {
    outbound: SharedOutbound,
    events: broadcast::Sender<StoredEvent>,
    frames: Vec<(DeviceId, Downlink)>,
    pub(super) stored: Vec<StoredEvent>,
    /// Integration messages: (subtopic under `hallwatch/`, JSON).
    pub(super) announcements: Vec<(String, String)>,
    /// Whether `hallwatch/status` must be published again.
    pub(super) status_changed: bool,
    pub(super) replies: Vec<(usize, Result<AlertView, CommandError>)>,
}

/// The gateway's downlink sequence; the boot field of its frames is 0 (the gateway keeps no
/// boot counter: devices match acknowledgements by their own press's boot and seq).
static DOWNLINK_SEQ: AtomicU32 = AtomicU32::new(0);

impl Effects {
    pub(super) fn new(outbound: SharedOutbound, events: broadcast::Sender<StoredEvent>) -> Effects {
        Effects {
            outbound,
            events,
            frames: Vec::new(),
            stored: Vec::new(),
            announcements: Vec::new(),
            status_changed: false,
            replies: Vec::new(),
        }
    }

    pub(super) fn press_ack(&mut self, device: &DeviceId, ack: PressAck) {
        self.frame(device, Downlink::PressAck(ack));
    }

    pub(super) fn frame(&mut self, device: &DeviceId, body: Downlink) {
        self.frames.push((device.clone(), body));
    }

    pub(super) fn execute(self, inputs: Vec<Input>) {
        let mut buf = [0u8; MAX_FRAME_LEN];
        for (device, body) in self.frames {
            let seq = DOWNLINK_SEQ.fetch_add(1, Ordering::Relaxed);
            match encode_downlink(&Frame::new(0, seq, body), &mut buf) {
                Ok(bytes) => {
                    if let Err(e) = self.outbound.send(device, Bytes::copy_from_slice(bytes)) {
                        tracing::warn!(error = %e, "downlink not sent");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode a downlink"),
            }
        }
        for (subtopic, json) in self.announcements {
            if let Err(e) = self.outbound.announce(&subtopic, Bytes::from(json)) {
                tracing::warn!(error = %e, subtopic, "integration message not sent");
            }
        }
        for event in self.stored {
            // No subscriber is fine: the event is in the database for whoever connects.
            let _ = self.events.send(event);
        }
        let mut replies: HashMap<usize, _> = self.replies.into_iter().collect();
        for (index, input) in inputs.into_iter().enumerate() {
            match input {
                Input::Request(Request::Transition { reply, .. }) => {
                    let outcome = replies.remove(&index).unwrap_or_else(|| {
                        Err(CommandError::Internal("the engine did not answer".into()))
                    });
                    // The caller may have given up waiting; the change stands regardless.
                    let _ = reply.send(outcome);
                }
                Input::Sync(report) => report.done(),
                Input::Uplink(_) => {}
            }
        }
    }
}
