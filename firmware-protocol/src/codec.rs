//! Frames to bytes and back. The only module that calls postcard, so the checks every frame
//! passes (size, version, layout, trailing bytes, canonical form, field ranges) live in one place.

use postcard::ser_flavors::Size;
use serde::{Deserialize, Serialize};

use crate::downlink::Downlink;
use crate::error::{DecodeError, EncodeError};
use crate::frame::{DownlinkFrame, Frame, UplinkFrame};
use crate::label::Label;
use crate::uplink::{OCCUPANCY_INDEX, Uplink};
use crate::{MAX_FRAME_LEN, PROTOCOL_VERSION};

/// Encodes a device's frame into `buf` and returns the encoded bytes, a prefix of `buf`.
///
/// A `buf` of [`MAX_FRAME_LEN`] bytes is always large enough.
pub fn encode_uplink<'b>(frame: &UplinkFrame, buf: &'b mut [u8]) -> Result<&'b [u8], EncodeError> {
    encode(frame, buf)
}

/// Decodes a frame received from a device. Never panics and never allocates, whatever `bytes`
/// holds; see [`DecodeError`] for the checks and their order.
pub fn decode_uplink(bytes: &[u8]) -> Result<UplinkFrame, DecodeError> {
    decode(bytes)
}

/// Encodes a gateway's frame into `buf` and returns the encoded bytes, a prefix of `buf`.
///
/// A `buf` of [`MAX_FRAME_LEN`] bytes is always large enough.
pub fn encode_downlink<'b>(
    frame: &DownlinkFrame,
    buf: &'b mut [u8],
) -> Result<&'b [u8], EncodeError> {
    encode(frame, buf)
}

/// Decodes a frame received from the gateway. Never panics and never allocates, whatever
/// `bytes` holds; see [`DecodeError`] for the checks and their order.
pub fn decode_downlink(bytes: &[u8]) -> Result<DownlinkFrame, DecodeError> {
    decode(bytes)
}

/// What the codec needs from a frame body beyond serde.
trait Body: Serialize + for<'de> Deserialize<'de> {
    /// Range checks postcard's types cannot express: `(field, reason)` on failure.
    fn check(&self) -> Result<(), (&'static str, &'static str)>;

    /// Explains a serde "custom" error for `frame`. Postcard throws away the message of errors
    /// raised by `Deserialize` impls, so an unknown variant index and a rejected room label
    /// arrive as the same error; this looks at the bytes again to tell them apart.
    fn explain_rejected_value(frame: &[u8]) -> DecodeError;
}

impl Body for Uplink {
    fn check(&self) -> Result<(), (&'static str, &'static str)> {
        Uplink::check(self)
    }

    fn explain_rejected_value(frame: &[u8]) -> DecodeError {
        // An occupancy report starts its body with the room; everything else that raises a
        // custom error is an enum with an out-of-range variant index.
        if let Ok(((_, _, _, variant), body)) =
            postcard::take_from_bytes::<(u8, u32, u32, u32)>(frame)
            && variant == OCCUPANCY_INDEX
            && let Ok((room, _)) = postcard::take_from_bytes::<&str>(body)
            && let Err(e) = Label::new(room)
        {
            return DecodeError::InvalidField {
                field: "room",
                reason: e.reason(),
            };
        }
        DecodeError::Malformed {
            reason: UNKNOWN_VARIANT,
        }
    }
}

impl Body for Downlink {
    fn check(&self) -> Result<(), (&'static str, &'static str)> {
        Downlink::check(self)
    }

    fn explain_rejected_value(_frame: &[u8]) -> DecodeError {
        // No downlink field validates itself during deserialization; only enums raise this.
        DecodeError::Malformed {
            reason: UNKNOWN_VARIANT,
        }
    }
}

const UNKNOWN_VARIANT: &str = "unknown variant index";

fn encode<'b, B: Body>(frame: &Frame<B>, buf: &'b mut [u8]) -> Result<&'b [u8], EncodeError> {
    if frame.version != PROTOCOL_VERSION {
        return Err(EncodeError::UnsupportedVersion {
            found: frame.version,
        });
    }
    frame
        .body
        .check()
        .map_err(|(field, reason)| EncodeError::InvalidField { field, reason })?;
    // Measuring first tells "frame too long" apart from "buffer too small", and gives both
    // errors the real length.
    let len = postcard::serialize_with_flavor(frame, Size::default())
        .map_err(|_| EncodeError::Unserializable)?;
    if len > MAX_FRAME_LEN {
        return Err(EncodeError::FrameTooLong { len });
    }
    let capacity = buf.len();
    let out = buf.get_mut(..len).ok_or(EncodeError::BufferTooSmall {
        needed: len,
        capacity,
    })?;
    let written = postcard::to_slice(frame, out).map_err(|_| EncodeError::Unserializable)?;
    Ok(written)
}

fn decode<B: Body>(bytes: &[u8]) -> Result<Frame<B>, DecodeError> {
    let Some(&version) = bytes.first() else {
        return Err(DecodeError::Empty);
    };
    if bytes.len() > MAX_FRAME_LEN {
        return Err(DecodeError::TooLong { len: bytes.len() });
    }
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    let (frame, rest) = postcard::take_from_bytes::<Frame<B>>(bytes).map_err(|e| match e {
        postcard::Error::SerdeDeCustom => B::explain_rejected_value(bytes),
        other => DecodeError::Malformed {
            reason: malformed_reason(other),
        },
    })?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { extra: rest.len() });
    }
    // Postcard accepts varints padded with 0x80 bytes. Refusing them gives every frame exactly
    // one encoding, so a frame re-encoded for a log or a comparison is byte for byte what was
    // sent, and a C encoder that pads varints is caught in its first test instead of drifting.
    let mut scratch = [0u8; MAX_FRAME_LEN];
    if postcard::to_slice(&frame, &mut scratch).map(|b| &*b) != Ok(bytes) {
        return Err(DecodeError::Malformed {
            reason: "varint is not in its shortest form",
        });
    }
    frame
        .body
        .check()
        .map_err(|(field, reason)| DecodeError::InvalidField { field, reason })?;
    Ok(frame)
}

fn malformed_reason(e: postcard::Error) -> &'static str {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => "frame ends in the middle of a field",
        postcard::Error::DeserializeBadVarint => "varint is too long for its type",
        postcard::Error::DeserializeBadUtf8 => "string is not valid UTF-8",
        postcard::Error::DeserializeBadEnum => UNKNOWN_VARIANT,
        _ => "bytes do not follow the frame layout",
    }
}
