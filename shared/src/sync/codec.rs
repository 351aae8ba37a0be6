//! Encoding and bounded decoding of sync envelopes.
//!
//! Decoding treats its input as hostile. The checks run cheapest first and each bounds the
//! next step: compressed length, envelope length, version, then decompression through a
//! reader that stops one byte past the limit (the frame header's declared content size is
//! never used to size anything), then the postcard payload read piece by piece so a declared
//! element count is checked against the limit before any element is decoded.
//!
//! Postcard encodes a struct as its fields in order and a `Vec<T>` as a varint length followed
//! by the elements, so reading a header of the leading fields plus the length, then each
//! element in turn, accepts exactly the bytes `postcard::to_allocvec` writes for the whole
//! message. Encoding therefore uses plain `to_allocvec`.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::SYNC_FORMAT_VERSION;
use super::command::{Command, SyncAck};
use super::error::SyncError;
use super::limits::Limits;
use super::record::{Lane, Record, SyncBatch};
use crate::ids::{Epoch, GatewayId, SchoolId, Seq};

/// zstd level for encoding: a gateway uploads small batches often, on modest hardware.
const COMPRESSION_LEVEL: i32 = 3;

/// The largest zstd window, as a power of two, that decoding accepts (8 MiB). The decoder
/// allocates a window buffer of the size a frame declares, so this bounds that allocation;
/// the encoder's level never needs more (level 3 uses at most 2 MiB).
const MAX_WINDOW_LOG: u32 = 23;

/// Bytes before the zstd frame: the little-endian format version.
const VERSION_LEN: usize = 2;

/// Decompressed bytes are pulled in pieces of this size.
const CHUNK: usize = 16 * 1024;

/// Encodes a gateway's batch as a versioned, compressed envelope.
pub fn encode_batch(batch: &SyncBatch) -> Result<Vec<u8>, SyncError> {
    encode(batch)
}

/// Encodes the cloud's ack as a versioned, compressed envelope.
pub fn encode_ack(ack: &SyncAck) -> Result<Vec<u8>, SyncError> {
    encode(ack)
}

/// Decodes a batch received from a gateway, enforcing `limits`.
pub fn decode_batch(bytes: &[u8], limits: &Limits) -> Result<SyncBatch, SyncError> {
    let payload = open_envelope(bytes, limits)?;
    let (header, rest) = take::<BatchHeader>(&payload, "batch header")?;
    if header.record_count > as_u64(limits.max_records) {
        return Err(SyncError::TooManyRecords {
            count: header.record_count,
            max: limits.max_records,
        });
    }
    let (records, rest) = take_elements::<Record>(rest, header.record_count, "record")?;
    ensure_consumed(rest)?;
    Ok(SyncBatch {
        gateway_id: header.gateway_id,
        school_id: header.school_id,
        epoch: header.epoch,
        lane: header.lane,
        records,
    })
}

/// Decodes an ack received from the cloud, enforcing `limits`.
pub fn decode_ack(bytes: &[u8], limits: &Limits) -> Result<SyncAck, SyncError> {
    let payload = open_envelope(bytes, limits)?;
    let (header, rest) = take::<AckHeader>(&payload, "ack header")?;
    if header.command_count > as_u64(limits.max_commands) {
        return Err(SyncError::TooManyCommands {
            count: header.command_count,
            max: limits.max_commands,
        });
    }
    let (commands, rest) = take_elements::<Command>(rest, header.command_count, "command")?;
    ensure_consumed(rest)?;
    Ok(SyncAck {
        acked_through: header.acked_through,
        commands,
    })
}

/// The fields of [`SyncBatch`] before its records, and the records' declared count.
#[derive(Deserialize)]
struct BatchHeader {
    gateway_id: GatewayId,
    school_id: SchoolId,
    epoch: Epoch,
    lane: Lane,
    record_count: u64,
}

/// The fields of [`SyncAck`] before its commands, and the commands' declared count.
#[derive(Deserialize)]
struct AckHeader {
    acked_through: Seq,
    command_count: u64,
}

fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, SyncError> {
    let payload = postcard::to_allocvec(message).map_err(encode_error)?;
    let mut out = Vec::with_capacity(VERSION_LEN + payload.len() / 4);
    out.extend_from_slice(&SYNC_FORMAT_VERSION.to_le_bytes());
    let mut encoder =
        zstd::stream::write::Encoder::new(out, COMPRESSION_LEVEL).map_err(encode_error)?;
    // A checksum costs 4 bytes per message and turns silent corruption into `Corrupt`.
    encoder.include_checksum(true).map_err(encode_error)?;
    // Knowing the size lets zstd pick a window no larger than the payload, which keeps the
    // receiver's window allocation small.
    encoder
        .set_pledged_src_size(Some(as_u64(payload.len())))
        .map_err(encode_error)?;
    encoder.write_all(&payload).map_err(encode_error)?;
    encoder.finish().map_err(encode_error)
}

fn encode_error(e: impl std::fmt::Display) -> SyncError {
    SyncError::Encode {
        reason: e.to_string(),
    }
}

/// Checks the envelope and returns the decompressed payload.
fn open_envelope(bytes: &[u8], limits: &Limits) -> Result<Vec<u8>, SyncError> {
    if bytes.len() > limits.max_compressed {
        return Err(SyncError::CompressedTooLarge {
            len: bytes.len(),
            max: limits.max_compressed,
        });
    }
    let Some((version, frame)) = bytes.split_first_chunk::<VERSION_LEN>() else {
        return Err(SyncError::Truncated);
    };
    let found = u16::from_le_bytes(*version);
    if found != SYNC_FORMAT_VERSION {
        return Err(SyncError::UnsupportedVersion {
            found,
            expected: SYNC_FORMAT_VERSION,
        });
    }
    decompress(frame, limits.max_decompressed)
}

/// Decompresses exactly one zstd frame, producing at most `max` bytes and allocating at most
/// `max` bytes for them.
fn decompress(frame: &[u8], max: usize) -> Result<Vec<u8>, SyncError> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(frame)
        .map_err(zstd_error)?
        .single_frame();
    decoder.window_log_max(MAX_WINDOW_LOG).map_err(zstd_error)?;

    // The `take` is the hard stop: one byte past the limit is enough to know it was exceeded.
    let mut limited = decoder.by_ref().take(as_u64(max).saturating_add(1));
    let mut out = Vec::new();
    let mut chunk = vec![0; CHUNK];
    loop {
        let n = limited.read(&mut chunk).map_err(zstd_error)?;
        if n == 0 {
            break;
        }
        if n > max - out.len() {
            return Err(SyncError::DecompressedTooLarge { max });
        }
        grow_within(&mut out, n, max);
        out.extend_from_slice(&chunk[..n]);
    }

    let after_frame = decoder.finish();
    if !after_frame.is_empty() {
        return Err(SyncError::Corrupt {
            message: format!("{} bytes after the zstd frame", after_frame.len()),
        });
    }
    Ok(out)
}

/// Reserves room for `additional` more bytes, doubling as `Vec` would but never past `max`
/// (which the caller has checked `len + additional` does not exceed).
fn grow_within(out: &mut Vec<u8>, additional: usize, max: usize) {
    let needed = out.len() + additional;
    if needed > out.capacity() {
        let target = needed.max(out.capacity().saturating_mul(2)).min(max);
        out.reserve_exact(target - out.len());
    }
}

fn zstd_error(e: io::Error) -> SyncError {
    // The zstd reader reports a frame cut off by the end of input as an unexpected EOF.
    if e.kind() == io::ErrorKind::UnexpectedEof {
        SyncError::Truncated
    } else {
        SyncError::Corrupt {
            message: e.to_string(),
        }
    }
}

fn take<'a, T: Deserialize<'a>>(input: &'a [u8], what: &str) -> Result<(T, &'a [u8]), SyncError> {
    postcard::take_from_bytes(input).map_err(|e| SyncError::Malformed {
        reason: format!("{what}: {e}"),
    })
}

/// Decodes `count` consecutive elements; the caller has already checked `count` against its
/// limit.
fn take_elements<'a, T: Deserialize<'a>>(
    mut input: &'a [u8],
    count: u64,
    what: &str,
) -> Result<(Vec<T>, &'a [u8]), SyncError> {
    // Every element takes at least one byte, so a count beyond the remaining input is a lie
    // that must not size the allocation.
    let capacity = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(input.len());
    let mut elements = Vec::with_capacity(capacity);
    for index in 0..count {
        let (element, rest) =
            postcard::take_from_bytes::<T>(input).map_err(|e| SyncError::Malformed {
                reason: format!("{what} {index}: {e}"),
            })?;
        elements.push(element);
        input = rest;
    }
    Ok((elements, input))
}

fn ensure_consumed(rest: &[u8]) -> Result<(), SyncError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(SyncError::TrailingBytes { count: rest.len() })
    }
}

fn as_u64(n: usize) -> u64 {
    // usize is at most 64 bits on every supported target.
    u64::try_from(n).unwrap_or(u64::MAX)
}
