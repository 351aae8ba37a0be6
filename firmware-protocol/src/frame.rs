//! The envelope every message travels in: protocol version, the sender's boot counter and its
//! per-boot sequence number, then the body.

use serde::{Deserialize, Serialize};

use crate::PROTOCOL_VERSION;
use crate::downlink::Downlink;
use crate::uplink::Uplink;

/// One message on the wire. Field order is wire order.
///
/// `version` comes first and is a postcard `u8`, which is one raw byte, so byte 0 of every frame
/// is the version whatever the rest of the layout becomes. That is what lets a decoder refuse a
/// frame from another protocol version before trying to read it.
///
/// `boot` and `seq` identify the frame: a device retransmits a frame with the *same* `boot` and
/// `seq` until the gateway acknowledges it, so the gateway drops any `(boot, seq)` it has already
/// seen. Counting per boot means a device needs no persistent sequence counter, only a boot
/// counter it bumps once at start-up. Downlink frames carry the gateway's own boot and sequence.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame<B> {
    /// Always [`PROTOCOL_VERSION`] for frames this crate encodes or decodes.
    pub version: u8,
    /// The sender's boot counter, incremented once per power-up.
    pub boot: u32,
    /// The sender's sequence number within this boot.
    pub seq: u32,
    /// What the frame says.
    pub body: B,
}

/// A frame a device sends to the gateway on `d/{device_id}/up`.
pub type UplinkFrame = Frame<Uplink>;

/// A frame the gateway sends to a device on `d/{device_id}/down`.
pub type DownlinkFrame = Frame<Downlink>;

impl<B> Frame<B> {
    /// A frame of the current [`PROTOCOL_VERSION`].
    pub const fn new(boot: u32, seq: u32, body: B) -> Self {
        Frame {
            version: PROTOCOL_VERSION,
            boot,
            seq,
            body,
        }
    }
}
