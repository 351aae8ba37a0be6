//! Sync messages survive encode -> decode unchanged, the incremental decoder accepts exactly
//! postcard's own layout, and no input whatsoever makes the decoder panic.

mod common;

use common::{ack_with_every_command, any_ack, any_batch, envelope, realistic_batch};
use proptest::prelude::*;
use shared::sync::{
    Limits, SYNC_FORMAT_VERSION, SyncBatch, decode_ack, decode_batch, encode_ack, encode_batch,
};

#[test]
fn a_realistic_batch_round_trips() {
    let batch = realistic_batch(1_000);
    let bytes = encode_batch(&batch).unwrap();
    assert_eq!(decode_batch(&bytes, &Limits::default()).unwrap(), batch);
}

#[test]
fn a_batch_at_the_record_limit_round_trips() {
    let batch = realistic_batch(Limits::DEFAULT.max_records as u32);
    let bytes = encode_batch(&batch).unwrap();
    assert_eq!(decode_batch(&bytes, &Limits::default()).unwrap(), batch);
}

#[test]
fn an_empty_batch_round_trips() {
    let batch = SyncBatch {
        records: vec![],
        ..realistic_batch(0)
    };
    assert_eq!(
        decode_batch(&encode_batch(&batch).unwrap(), &Limits::default()).unwrap(),
        batch
    );
}

#[test]
fn an_ack_with_every_command_round_trips() {
    let ack = ack_with_every_command();
    assert_eq!(
        decode_ack(&encode_ack(&ack).unwrap(), &Limits::default()).unwrap(),
        ack
    );
}

#[test]
fn the_payload_is_exactly_postcards_own_layout() {
    let batch = realistic_batch(200);
    let plain = postcard::to_allocvec(&batch).unwrap();

    // What the encoder compressed is the plain serialization of the whole batch...
    let bytes = encode_batch(&batch).unwrap();
    assert_eq!(zstd::decode_all(&bytes[2..]).unwrap(), plain);
    // ...and the incremental decoder reads the plain serialization, however it was compressed.
    let decoded = decode_batch(&envelope(SYNC_FORMAT_VERSION, &plain), &Limits::default()).unwrap();
    assert_eq!(decoded, batch);

    let ack = ack_with_every_command();
    let plain = postcard::to_allocvec(&ack).unwrap();
    assert_eq!(
        decode_ack(&envelope(SYNC_FORMAT_VERSION, &plain), &Limits::default()).unwrap(),
        ack
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_batch(&bytes, &Limits::default());
        let _ = decode_ack(&bytes, &Limits::default());
    }

    #[test]
    fn arbitrary_frames_after_a_valid_version_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let bytes = [&SYNC_FORMAT_VERSION.to_le_bytes()[..], &tail].concat();
        let _ = decode_batch(&bytes, &Limits::default());
        let _ = decode_ack(&bytes, &Limits::default());
    }

    #[test]
    fn arbitrary_payloads_in_a_valid_envelope_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let bytes = envelope(SYNC_FORMAT_VERSION, &payload);
        let _ = decode_batch(&bytes, &Limits::default());
        let _ = decode_ack(&bytes, &Limits::default());
    }

    #[test]
    fn arbitrary_batches_round_trip(batch in any_batch()) {
        let bytes = encode_batch(&batch).unwrap();
        prop_assert_eq!(decode_batch(&bytes, &Limits::default()).unwrap(), batch);
    }

    #[test]
    fn arbitrary_acks_round_trip(ack in any_ack()) {
        let bytes = encode_ack(&ack).unwrap();
        prop_assert_eq!(decode_ack(&bytes, &Limits::default()).unwrap(), ack);
    }
}
