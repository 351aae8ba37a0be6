//! The wire format between Hallwatch devices (ESP32 panic buttons and people-counting cameras)
//! and the on-prem gateway: the frames they exchange over MQTT, how those frames are encoded
//! as bytes, and which MQTT topics carry them.
//!
//! # Layout
//!
//! - `frame`: [`Frame`], the envelope every message travels in (version, boot, sequence).
//! - `uplink`: [`Uplink`], what a device says to the gateway.
//! - `downlink`: [`Downlink`], what the gateway says to a device.
//! - `label`: [`Label`], the inline, allocation-free room code.
//! - `codec`: [`encode_uplink`], [`decode_uplink`], [`encode_downlink`], [`decode_downlink`];
//!   the only module that calls postcard.
//! - `error`: [`DecodeError`] and [`EncodeError`].
//! - `topic`: the MQTT topic scheme (`d/{device_id}/up`, `d/{device_id}/down`).
//!
//! Outside `src/`: `vectors/` (golden frames), `tests/`, `fuzz/` (cargo-fuzz target), and
//! `README.md`, which explains the byte layout for firmware written in C.
//!
//! # Example
//!
//! ```
//! use firmware_protocol::*;
//!
//! // A button sends a double press: boot 7 of the device, its 42nd frame since boot.
//! let press = Uplink::ButtonPress(ButtonPress { pattern: PressPattern::Double, press_seq: 3 });
//! let frame = Frame::new(7, 42, press);
//! let mut buf = [0u8; MAX_FRAME_LEN];
//! let bytes = encode_uplink(&frame, &mut buf)?;
//! assert_eq!(bytes, [1, 7, 42, 0, 1, 3]);
//!
//! // The gateway decodes what arrived on `d/btn-0042/up`.
//! assert_eq!(parse_device_topic("d/btn-0042/up"), Some(("btn-0042", Direction::Up)));
//! assert_eq!(decode_uplink(bytes)?, frame);
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
//!
//! # Invariants
//!
//! - **No std, no alloc.** The crate is `no_std` unconditionally and decoding never allocates,
//!   so the same code runs on the ESP32 and on the gateway. The `std` feature adds
//!   conveniences (`String` topic builders), never behaviour.
//! - **Decoding never panics.** Every input, however hostile, becomes a frame or a
//!   [`DecodeError`]. A fuzz target (`fuzz/`) and property tests hold us to this.
//! - **One frame, one encoding.** The decoder rejects non-minimal varints, so an accepted frame
//!   re-encodes to exactly the bytes it came from.
//! - **The bytes are pinned.** `vectors/` holds one golden frame per variant; changing the layout
//!   of an existing frame breaks those tests on purpose. Variants are only ever appended, fields
//!   are never reordered or removed, and any layout change to an existing frame bumps
//!   [`PROTOCOL_VERSION`]. The README explains the byte layout for C firmware authors.
//! - **Knows nothing of MQTT clients, tokio or the gateway's domain types.** Those convert from
//!   these wire types at their own edges.
#![no_std]

#[cfg(feature = "std")]
extern crate std;

mod codec;
mod downlink;
mod error;
mod frame;
mod label;
mod topic;
mod uplink;

pub use codec::{decode_downlink, decode_uplink, encode_downlink, encode_uplink};
pub use downlink::{AckState, DeviceConfig, Downlink, PressAck, PressAction, PressMap, TimeSync};
pub use error::{DecodeError, EncodeError};
pub use frame::{DownlinkFrame, Frame, UplinkFrame};
pub use label::{Label, LabelError};
pub use topic::{
    DOWN_TOPIC_TEMPLATE, Direction, MAX_DEVICE_ID_LEN, MAX_TOPIC_LEN, TopicError,
    UP_TOPIC_TEMPLATE, is_valid_device_id, parse_device_topic, write_device_topic,
};
#[cfg(feature = "std")]
pub use topic::{down_topic, up_topic};
pub use uplink::{
    ButtonPress, CancelRequest, FirmwareVersion, Heartbeat, Occupancy, PressPattern, Uplink,
};

/// The version this crate speaks. It is the first byte of every frame; a decoder refuses any
/// other value, so a device and a gateway on different layouts fail loudly instead of
/// misreading each other's fields.
pub const PROTOCOL_VERSION: u8 = 1;

/// The longest frame either side will encode or accept, in bytes. Today's largest frame is far
/// smaller (an occupancy report with a 32-byte room code is about 50 bytes); the headroom is
/// for appended variants, and the cap keeps device receive buffers a fixed size.
pub const MAX_FRAME_LEN: usize = 256;
