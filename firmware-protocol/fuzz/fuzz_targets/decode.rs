//! Feeds arbitrary bytes to both frame decoders. A decoder must never panic, and any frame it
//! accepts must re-encode to exactly the input bytes (one frame, one encoding).
#![no_main]

use firmware_protocol::{
    MAX_FRAME_LEN, decode_downlink, decode_uplink, encode_downlink, encode_uplink,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; MAX_FRAME_LEN];
    if let Ok(frame) = decode_uplink(data) {
        assert_eq!(encode_uplink(&frame, &mut buf), Ok(data), "{frame:?}");
    }
    if let Ok(frame) = decode_downlink(data) {
        assert_eq!(encode_downlink(&frame, &mut buf), Ok(data), "{frame:?}");
    }
});
