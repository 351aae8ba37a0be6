//! Decoding untrusted sync bytes: every bound in `Limits` and every malformed-input path
//! yields its typed error, never a panic and never unbounded work.

mod common;

use std::io::Write;

use common::{ack_with_every_command, envelope, realistic_batch};
use shared::sync::{
    Lane, Limits, SYNC_FORMAT_VERSION, SyncError, decode_ack, decode_batch, encode_ack,
    encode_batch,
};

fn valid_bytes() -> Vec<u8> {
    encode_batch(&realistic_batch(50)).expect("encodes")
}

#[test]
fn bound_compressed_size_is_checked_before_anything_else() {
    let bytes = valid_bytes();
    let limits = Limits {
        max_compressed: bytes.len() - 1,
        ..Limits::default()
    };
    assert_eq!(
        decode_batch(&bytes, &limits),
        Err(SyncError::CompressedTooLarge {
            len: bytes.len(),
            max: bytes.len() - 1
        })
    );
    let huge = vec![0xff; Limits::DEFAULT.max_compressed + 1];
    assert!(matches!(
        decode_ack(&huge, &Limits::default()),
        Err(SyncError::CompressedTooLarge { .. })
    ));
}

#[test]
fn bound_every_prefix_of_a_valid_encoding_is_truncated() {
    let bytes = valid_bytes();
    for len in 0..bytes.len() {
        assert_eq!(
            decode_batch(&bytes[..len], &Limits::default()),
            Err(SyncError::Truncated),
            "{len}"
        );
    }
    assert!(decode_batch(&bytes, &Limits::default()).is_ok());
}

#[test]
fn bound_every_prefix_of_a_valid_ack_is_rejected() {
    let bytes = encode_ack(&ack_with_every_command()).unwrap();
    for len in 0..bytes.len() {
        assert!(
            decode_ack(&bytes[..len], &Limits::default()).is_err(),
            "{len}"
        );
    }
}

#[test]
fn bound_zip_bomb_of_one_gib_of_zeros_stops_at_the_decompressed_limit() {
    // Stream 1 GiB of zeros through the encoder a chunk at a time, so the test itself never
    // holds more than one chunk.
    let mut encoder =
        zstd::stream::write::Encoder::new(SYNC_FORMAT_VERSION.to_le_bytes().to_vec(), 1).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        encoder.write_all(&chunk).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(
        bomb.len() < Limits::DEFAULT.max_compressed,
        "the bomb passes the first check"
    );

    let max = Limits::DEFAULT.max_decompressed;
    assert_eq!(
        decode_batch(&bomb, &Limits::default()),
        Err(SyncError::DecompressedTooLarge { max })
    );
    assert_eq!(
        decode_ack(&bomb, &Limits::default()),
        Err(SyncError::DecompressedTooLarge { max })
    );
}

#[test]
fn bound_decompressed_limit_applies_to_honest_messages_too() {
    let bytes = valid_bytes();
    let limits = Limits {
        max_decompressed: 100,
        ..Limits::default()
    };
    assert_eq!(
        decode_batch(&bytes, &limits),
        Err(SyncError::DecompressedTooLarge { max: 100 })
    );
}

#[test]
fn bound_frames_needing_a_huge_window_are_refused_before_allocating_it() {
    let mut encoder =
        zstd::stream::write::Encoder::new(SYNC_FORMAT_VERSION.to_le_bytes().to_vec(), 3).unwrap();
    encoder.window_log(27).unwrap(); // 128 MiB
    encoder
        .write_all(b"small payload, large declared window")
        .unwrap();
    let bytes = encoder.finish().unwrap();
    let err = decode_batch(&bytes, &Limits::default()).unwrap_err();
    assert!(matches!(err, SyncError::Corrupt { .. }), "{err:?}");
}

#[test]
fn bound_record_count_is_checked_before_records_are_decoded() {
    let bytes = encode_batch(&realistic_batch(11)).unwrap();
    let limits = Limits {
        max_records: 10,
        ..Limits::default()
    };
    assert_eq!(
        decode_batch(&bytes, &limits),
        Err(SyncError::TooManyRecords { count: 11, max: 10 })
    );

    // A payload that claims a vast number of records but carries none: refused on the count,
    // without trying to reserve room for them.
    let mut payload = postcard::to_allocvec(&(
        common::gateway(),
        common::school(),
        common::epoch(),
        Lane::Telemetry,
    ))
    .unwrap();
    payload.extend(postcard::to_allocvec(&u64::MAX).unwrap());
    let err = decode_batch(&envelope(SYNC_FORMAT_VERSION, &payload), &Limits::default());
    assert_eq!(
        err,
        Err(SyncError::TooManyRecords {
            count: u64::MAX,
            max: 10_000
        })
    );

    // A count within the limit but larger than the data is an ordinary malformed payload.
    let mut payload = postcard::to_allocvec(&(
        common::gateway(),
        common::school(),
        common::epoch(),
        Lane::Telemetry,
    ))
    .unwrap();
    payload.push(5);
    let err = decode_batch(&envelope(SYNC_FORMAT_VERSION, &payload), &Limits::default());
    assert!(matches!(err, Err(SyncError::Malformed { .. })), "{err:?}");
}

#[test]
fn bound_command_count_is_checked_before_commands_are_decoded() {
    let bytes = encode_ack(&ack_with_every_command()).unwrap();
    let limits = Limits {
        max_commands: 3,
        ..Limits::default()
    };
    assert_eq!(
        decode_ack(&bytes, &limits),
        Err(SyncError::TooManyCommands { count: 4, max: 3 })
    );
}

#[test]
fn other_versions_are_refused_before_decompressing() {
    let bytes = valid_bytes();
    for found in [0, 1, 3, u16::MAX] {
        let mut other = bytes.clone();
        other[..2].copy_from_slice(&found.to_le_bytes());
        let expected = SyncError::UnsupportedVersion {
            found,
            expected: SYNC_FORMAT_VERSION,
        };
        assert_eq!(
            decode_batch(&other, &Limits::default()),
            Err(expected.clone())
        );
        // Garbage after the version does not matter: it is never looked at.
        let garbage = [&found.to_le_bytes()[..], b"not zstd"].concat();
        assert_eq!(decode_batch(&garbage, &Limits::default()), Err(expected));
    }
    assert_eq!(&bytes[..2], &[2, 0], "the version is little-endian");
}

#[test]
fn garbage_instead_of_zstd_is_corrupt() {
    let bytes = [
        &SYNC_FORMAT_VERSION.to_le_bytes()[..],
        b"this is not a zstd frame",
    ]
    .concat();
    let err = decode_batch(&bytes, &Limits::default()).unwrap_err();
    assert!(matches!(err, SyncError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("compressed data is corrupt: "),
        "{err}"
    );
}

#[test]
fn a_flipped_bit_never_yields_a_different_batch() {
    // The frame checksum covers the decompressed payload. Some bits of a zstd frame do not
    // affect the output (unused header bits, entropy-table padding), so a flip may decode to
    // the same batch; it must never decode to a different one.
    let batch = realistic_batch(50);
    let bytes = encode_batch(&batch).unwrap();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1 << bit;
            if let Ok(decoded) = decode_batch(&flipped, &Limits::default()) {
                assert_eq!(decoded, batch, "byte {i} bit {bit}");
            }
        }
    }
}

#[test]
fn bytes_after_the_payload_or_after_the_frame_are_refused() {
    let batch = realistic_batch(3);
    let mut payload = postcard::to_allocvec(&batch).unwrap();
    payload.extend([0, 0]);
    let bytes = envelope(SYNC_FORMAT_VERSION, &payload);
    assert_eq!(
        decode_batch(&bytes, &Limits::default()),
        Err(SyncError::TrailingBytes { count: 2 })
    );

    let mut bytes = encode_batch(&batch).unwrap();
    bytes.push(0);
    let err = decode_batch(&bytes, &Limits::default()).unwrap_err();
    assert_eq!(
        err,
        SyncError::Corrupt {
            message: "1 bytes after the zstd frame".into()
        }
    );
}

#[test]
fn invalid_ids_inside_records_are_malformed_and_name_the_record() {
    let batch = realistic_batch(3);
    let good = postcard::to_allocvec(&batch).unwrap();
    // Record 2 is a device health report whose device id starts "pb-": make it "pb/".
    let at = good.windows(3).rposition(|w| w == b"pb-").unwrap();
    let mut bad = good.clone();
    bad[at + 2] = b'/';
    let err = decode_batch(&envelope(SYNC_FORMAT_VERSION, &bad), &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, SyncError::Malformed { reason } if reason.starts_with("record 2: ")),
        "{err:?}"
    );
}
