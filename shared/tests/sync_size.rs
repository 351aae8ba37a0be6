//! The wire budget: a realistic batch must cost at most 50 bytes per record after
//! compression, so a school's day of health reports and snapshots stays cheap to upload and
//! store.

mod common;

use common::realistic_batch;
use shared::sync::encode_batch;

#[test]
fn a_realistic_batch_of_1000_records_compresses_below_50_bytes_per_record() {
    let batch = realistic_batch(1_000);
    let bytes = encode_batch(&batch).unwrap();
    let per_record = bytes.len() as f64 / batch.records.len() as f64;
    assert!(
        per_record < 50.0,
        "{per_record:.1} bytes/record ({} bytes)",
        bytes.len()
    );
}
