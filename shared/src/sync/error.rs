//! [`SyncError`]: why a sync message could not be encoded or was refused on decoding.

use thiserror::Error;

/// A sync message that could not be encoded, or that decoding refused. Decoding errors are
/// listed in the order the checks run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SyncError {
    /// The message is larger than [`crate::sync::Limits::max_compressed`].
    #[error("message is {len} bytes, more than the limit of {max}")]
    CompressedTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message ends early: no room for the version, or the zstd frame is cut off.
    #[error("message is truncated")]
    Truncated,
    /// The envelope's version is not [`crate::sync::SYNC_FORMAT_VERSION`].
    #[error("sync format version {found} is not supported (expected {expected})")]
    UnsupportedVersion {
        /// The version in the message.
        found: u16,
        /// The version this build speaks.
        expected: u16,
    },
    /// The payload would decompress past [`crate::sync::Limits::max_decompressed`].
    #[error("message decompresses to more than the limit of {max} bytes")]
    DecompressedTooLarge {
        /// The limit.
        max: usize,
    },
    /// The compressed data is not a valid zstd frame (or needs too large a window).
    #[error("compressed data is corrupt: {message}")]
    Corrupt {
        /// What zstd reported.
        message: String,
    },
    /// The batch declares more than [`crate::sync::Limits::max_records`] records.
    #[error("batch has {count} records, more than the limit of {max}")]
    TooManyRecords {
        /// The declared count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// The ack declares more than [`crate::sync::Limits::max_commands`] commands.
    #[error("ack has {count} commands, more than the limit of {max}")]
    TooManyCommands {
        /// The declared count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// The payload does not decode as the expected message (including invalid ids).
    #[error("malformed payload: {reason}")]
    Malformed {
        /// Where decoding stopped and why.
        reason: String,
    },
    /// The payload decoded completely but bytes were left over.
    #[error("{count} unexpected bytes after the payload")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// Encoding failed (serialization or the compressor); a bug or resource exhaustion.
    #[error("cannot encode sync message: {reason}")]
    Encode {
        /// What failed.
        reason: String,
    },
}
