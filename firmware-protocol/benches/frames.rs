//! Frame codec figures for `cargo xtask bench codec`: time to encode and decode a heartbeat
//! and a button press, and to refuse a garbage frame. Prints `figure` lines.

use std::hint::black_box;
use std::time::Instant;

use firmware_protocol::{
    ButtonPress, FirmwareVersion, Frame, Heartbeat, MAX_FRAME_LEN, PressPattern, Uplink,
    UplinkFrame, decode_uplink, encode_uplink,
};

const ROUNDS: u32 = 2_000_000;

fn main() {
    let heartbeat = Frame::new(
        41,
        70_000,
        Uplink::Heartbeat(Heartbeat {
            uptime_s: 86_400,
            firmware: FirmwareVersion {
                major: 1,
                minor: 4,
                patch: 2,
            },
            battery_mv: 2_950,
            rssi_dbm: -61,
            free_heap: 182_000,
        }),
    );
    let press = Frame::new(
        41,
        70_001,
        Uplink::ButtonPress(ButtonPress {
            pattern: PressPattern::LongHold,
            press_seq: 3,
        }),
    );
    measure("heartbeat", &heartbeat);
    measure("press", &press);

    // A frame of the right version whose body is an unknown variant: refused after parsing.
    let garbage = [1u8, 5, 9, 77, 0, 0];
    let started = Instant::now();
    for _ in 0..ROUNDS {
        assert!(black_box(decode_uplink(black_box(&garbage))).is_err());
    }
    println!(
        "figure frame_refuse_garbage_ns {:.1} ns",
        per_round_ns(started)
    );
}

fn measure(name: &str, frame: &UplinkFrame) {
    let mut buf = [0u8; MAX_FRAME_LEN];
    let len = encode_uplink(frame, &mut buf).expect("encodes").len();
    println!("figure frame_{name}_bytes {len} B");

    let started = Instant::now();
    for _ in 0..ROUNDS {
        black_box(
            encode_uplink(black_box(frame), &mut buf)
                .expect("encodes")
                .len(),
        );
    }
    println!(
        "figure frame_{name}_encode_ns {:.1} ns",
        per_round_ns(started)
    );

    let bytes = &buf[..len];
    let started = Instant::now();
    for _ in 0..ROUNDS {
        black_box(decode_uplink(black_box(bytes)).expect("decodes"));
    }
    println!(
        "figure frame_{name}_decode_ns {:.1} ns",
        per_round_ns(started)
    );
}

fn per_round_ns(started: Instant) -> f64 {
    started.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
}
