//! Sync codec figures for `cargo xtask bench codec`: bytes per record on the wire for a
//! realistic batch (and the same records as JSON, for the ratio), and encode/decode rates.
//! Prints `figure <name> <value> <unit>` lines; xtask takes medians over runs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use shared::sync::{Limits, decode_batch, encode_batch};

const RECORDS: u32 = 1_000;
const ROUNDS: u32 = 200;

fn main() {
    let batch = common::realistic_batch(RECORDS);
    let wire = encode_batch(&batch).expect("encodes");
    let json = serde_json::to_vec(&batch).expect("serialises as JSON");
    let per_record = |bytes: usize| bytes as f64 / f64::from(RECORDS);
    println!(
        "figure sync_wire_bytes_per_record {:.2} B",
        per_record(wire.len())
    );
    println!(
        "figure sync_json_bytes_per_record {:.2} B",
        per_record(json.len())
    );
    println!(
        "figure sync_json_to_wire_ratio {:.2} x",
        json.len() as f64 / wire.len() as f64
    );

    let started = Instant::now();
    for _ in 0..ROUNDS {
        black_box(encode_batch(black_box(&batch)).expect("encodes"));
    }
    let rate = f64::from(RECORDS * ROUNDS) / started.elapsed().as_secs_f64();
    println!("figure sync_encode_records_per_s {rate:.0} records/s");

    let started = Instant::now();
    for _ in 0..ROUNDS {
        black_box(decode_batch(black_box(&wire), &Limits::DEFAULT).expect("decodes"));
    }
    let rate = f64::from(RECORDS * ROUNDS) / started.elapsed().as_secs_f64();
    println!("figure sync_decode_records_per_s {rate:.0} records/s");
}
