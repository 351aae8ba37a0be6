//! [`Limits`]: the bounds every decode of untrusted sync bytes enforces.

/// Upper bounds for decoding one message. Each is checked before the work or allocation it
/// guards, so a hostile or broken peer costs at most these amounts.
///
/// The defaults fit a gateway's normal upload (a few thousand records, well under a megabyte
/// compressed) with room to spare, while capping what a hostile message can make the
/// receiver hold at 16 MiB of payload, plus a zstd window of at most 8 MiB (a fixed bound in
/// the codec, not a setting: frames declaring a larger window are refused as corrupt).
/// Senders must keep batches within the receiver's limits; the gateway's uploader sizes its
/// batches by `max_records`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, envelope included. Default 1 MiB.
    pub max_compressed: usize,
    /// Largest payload after decompression. Default 16 MiB.
    pub max_decompressed: usize,
    /// Most records in one [`crate::sync::SyncBatch`]. Default 10,000.
    pub max_records: usize,
    /// Most commands in one [`crate::sync::SyncAck`]. Default 1,000.
    pub max_commands: usize,
}

impl Limits {
    /// The documented defaults, usable in `const` contexts.
    pub const DEFAULT: Limits = Limits {
        max_compressed: 1024 * 1024,
        max_decompressed: 16 * 1024 * 1024,
        max_records: 10_000,
        max_commands: 1_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
