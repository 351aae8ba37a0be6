//! Why a frame could not be decoded or encoded. Both errors are small `Copy` values with
//! `'static` reasons, so firmware can log them without allocating.

use core::fmt;

/// Why bytes are not an acceptable frame.
///
/// The decoder reports the first problem it finds. It checks, in order: empty input, length,
/// version byte, layout (a room label is checked as it is read), trailing bytes, shortest-form
/// varints, then field ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// There were no bytes at all.
    Empty,
    /// The input is longer than [`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN); it is refused before
    /// any of it is parsed.
    TooLong {
        /// The input's length in bytes.
        len: usize,
    },
    /// Byte 0 is not [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).
    UnsupportedVersion {
        /// The version byte the frame carries.
        found: u8,
    },
    /// The bytes do not follow the layout: cut short, an unknown variant, an over-long or
    /// non-minimal varint, a string that is not UTF-8.
    Malformed {
        /// What was wrong, in a few words.
        reason: &'static str,
    },
    /// A whole frame was read but bytes were left over. Refused rather than ignored so that two
    /// different byte strings never decode to the same frame.
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
    /// The layout is fine but a field is out of range (a room label with a forbidden character,
    /// a confidence above 100, a zero heartbeat interval).
    InvalidField {
        /// The field's name as in the Rust struct.
        field: &'static str,
        /// The rule it broke.
        reason: &'static str,
    },
}

/// Why a frame was not encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncodeError {
    /// The frame's `version` is not [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION); this crate
    /// only writes the layout it can also read.
    UnsupportedVersion {
        /// The version the frame carries.
        found: u8,
    },
    /// A field is out of range, so the receiver would refuse the frame; caught here so the bug
    /// shows up on the sender's side.
    InvalidField {
        /// The field's name as in the Rust struct.
        field: &'static str,
        /// The rule it broke.
        reason: &'static str,
    },
    /// The encoded frame would be longer than [`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN).
    FrameTooLong {
        /// The encoded length in bytes.
        len: usize,
    },
    /// The caller's buffer cannot hold the encoded frame. A buffer of
    /// [`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN) bytes always can.
    BufferTooSmall {
        /// The encoded length in bytes.
        needed: usize,
        /// The buffer's length in bytes.
        capacity: usize,
    },
    /// Postcard refused the value. The frame types in this crate only ever fail for lack of
    /// space, so this is not expected; it exists so such a failure is never reported as a size
    /// problem.
    Unserializable,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("frame is empty"),
            DecodeError::TooLong { len } => write!(
                f,
                "frame is {len} bytes long, the limit is {} bytes",
                crate::MAX_FRAME_LEN
            ),
            DecodeError::UnsupportedVersion { found } => write!(
                f,
                "frame is protocol version {found}, this side speaks version {}",
                crate::PROTOCOL_VERSION
            ),
            DecodeError::Malformed { reason } => write!(f, "frame is malformed: {reason}"),
            DecodeError::TrailingBytes { extra } => {
                write!(
                    f,
                    "frame is followed by {extra} unexpected trailing byte(s)"
                )
            }
            DecodeError::InvalidField { field, reason } => {
                write!(f, "frame field `{field}` is invalid: {reason}")
            }
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::UnsupportedVersion { found } => write!(
                f,
                "cannot encode a protocol version {found} frame, only version {}",
                crate::PROTOCOL_VERSION
            ),
            EncodeError::InvalidField { field, reason } => {
                write!(
                    f,
                    "cannot encode frame, field `{field}` is invalid: {reason}"
                )
            }
            EncodeError::FrameTooLong { len } => write!(
                f,
                "encoded frame would be {len} bytes long, the limit is {} bytes",
                crate::MAX_FRAME_LEN
            ),
            EncodeError::BufferTooSmall { needed, capacity } => write!(
                f,
                "encoded frame needs {needed} bytes but the buffer holds only {capacity}"
            ),
            EncodeError::Unserializable => f.write_str("postcard could not serialize the frame"),
        }
    }
}

// `core::error::Error` is the trait `std::error::Error` re-exports, so hosts get `?` into
// `anyhow` and friends with or without the `std` feature.
impl core::error::Error for DecodeError {}
impl core::error::Error for EncodeError {}
