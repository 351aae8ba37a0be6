//! Property tests: the decoders survive any input, accepted frames have exactly one encoding,
//! and every valid frame round-trips. The fuzz target (`fuzz/`) pushes the same properties much
//! further; these keep them checked on every `cargo test`.

use firmware_protocol::{
    AckState, ButtonPress, CancelRequest, DecodeError, DeviceConfig, Downlink, DownlinkFrame,
    EncodeError, FirmwareVersion, Frame, Heartbeat, Label, MAX_FRAME_LEN, Occupancy,
    PROTOCOL_VERSION, PressAck, PressAction, PressMap, PressPattern, TimeSync, Uplink, UplinkFrame,
    decode_downlink, decode_uplink, encode_downlink, encode_uplink,
};
use proptest::prelude::*;

// === strategies ===

fn label() -> impl Strategy<Value = Label> {
    "[A-Za-z0-9._ -]{1,32}".prop_map(|s| Label::new(&s).expect("the regex only makes valid labels"))
}

fn press_pattern() -> impl Strategy<Value = PressPattern> {
    prop_oneof![
        Just(PressPattern::Single),
        Just(PressPattern::Double),
        Just(PressPattern::LongHold)
    ]
}

fn uplink() -> impl Strategy<Value = Uplink> {
    prop_oneof![
        (press_pattern(), any::<u32>()).prop_map(|(pattern, press_seq)| Uplink::ButtonPress(
            ButtonPress { pattern, press_seq }
        )),
        (
            any::<u32>(),
            any::<[u8; 3]>(),
            any::<u16>(),
            any::<i8>(),
            any::<u32>()
        )
            .prop_map(
                |(uptime_s, [major, minor, patch], battery_mv, rssi_dbm, free_heap)| {
                    Uplink::Heartbeat(Heartbeat {
                        uptime_s,
                        firmware: FirmwareVersion {
                            major,
                            minor,
                            patch,
                        },
                        battery_mv,
                        rssi_dbm,
                        free_heap,
                    })
                }
            ),
        (label(), any::<u16>(), any::<u16>(), 0..=100u8).prop_map(
            |(room, students, adults, confidence_pct)| {
                Uplink::Occupancy(Occupancy {
                    room,
                    students,
                    adults,
                    confidence_pct,
                })
            }
        ),
        (any::<u32>(), any::<u32>()).prop_map(|(press_boot, press_seq)| {
            Uplink::CancelRequest(CancelRequest {
                press_boot,
                press_seq,
            })
        }),
    ]
}

fn press_action() -> impl Strategy<Value = PressAction> {
    prop_oneof![
        Just(PressAction::Ignore),
        Just(PressAction::Panic),
        Just(PressAction::Medical),
        Just(PressAction::Fire),
        Just(PressAction::Lockdown),
        Just(PressAction::Intruder),
    ]
}

fn downlink() -> impl Strategy<Value = Downlink> {
    let state = prop_oneof![
        Just(AckState::Received),
        Just(AckState::Acknowledged),
        Just(AckState::Resolved),
        Just(AckState::Cancelled),
    ];
    prop_oneof![
        (any::<u32>(), any::<u32>(), state).prop_map(|(press_boot, press_seq, state)| {
            Downlink::PressAck(PressAck {
                press_boot,
                press_seq,
                state,
            })
        }),
        (1..=u16::MAX, press_action(), press_action(), press_action()).prop_map(
            |(heartbeat_interval_s, single, double, long_hold)| {
                Downlink::Config(DeviceConfig {
                    heartbeat_interval_s,
                    press_map: PressMap {
                        single,
                        double,
                        long_hold,
                    },
                })
            }
        ),
        any::<u64>().prop_map(|unix_ms| Downlink::TimeSync(TimeSync { unix_ms })),
    ]
}

fn uplink_frame() -> impl Strategy<Value = UplinkFrame> {
    (any::<u32>(), any::<u32>(), uplink()).prop_map(|(boot, seq, body)| Frame::new(boot, seq, body))
}

fn downlink_frame() -> impl Strategy<Value = DownlinkFrame> {
    (any::<u32>(), any::<u32>(), downlink())
        .prop_map(|(boot, seq, body)| Frame::new(boot, seq, body))
}

/// Bytes that get past the version check, so the layout parser sees most of the cases.
fn versioned_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..MAX_FRAME_LEN).prop_map(|mut rest| {
        rest.insert(0, PROTOCOL_VERSION);
        rest
    })
}

// === properties ===

/// Feeds `bytes` to both decoders; any accepted frame must re-encode to exactly `bytes`.
fn check_decoders(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut buf = [0u8; MAX_FRAME_LEN];
    if let Ok(frame) = decode_uplink(bytes) {
        prop_assert_eq!(encode_uplink(&frame, &mut buf), Ok(bytes));
    }
    if let Ok(frame) = decode_downlink(bytes) {
        prop_assert_eq!(encode_downlink(&frame, &mut buf), Ok(bytes));
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_frames_are_canonical(
        bytes in prop::collection::vec(any::<u8>(), 0..=512),
    ) {
        check_decoders(&bytes)?;
    }

    #[test]
    fn versioned_bytes_never_panic_and_accepted_frames_are_canonical(bytes in versioned_bytes()) {
        check_decoders(&bytes)?;
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        frame in uplink_frame(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let mut bytes = encode_uplink(&frame, &mut buf).unwrap().to_vec();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        check_decoders(&bytes)?;
        bytes.truncate(cut.index(bytes.len()));
        check_decoders(&bytes)?;
    }

    #[test]
    fn uplink_frames_round_trip(frame in uplink_frame()) {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let bytes = encode_uplink(&frame, &mut buf).unwrap();
        prop_assert_eq!(bytes[0], PROTOCOL_VERSION);
        prop_assert_eq!(decode_uplink(bytes), Ok(frame));
    }

    #[test]
    fn downlink_frames_round_trip(frame in downlink_frame()) {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let bytes = encode_downlink(&frame, &mut buf).unwrap();
        prop_assert_eq!(bytes[0], PROTOCOL_VERSION);
        prop_assert_eq!(decode_downlink(bytes), Ok(frame));
    }

    #[test]
    fn input_longer_than_max_frame_len_is_too_long(
        bytes in prop::collection::vec(any::<u8>(), MAX_FRAME_LEN + 1..=4 * MAX_FRAME_LEN),
    ) {
        let expected = Some(DecodeError::TooLong { len: bytes.len() });
        prop_assert_eq!(decode_uplink(&bytes).err(), expected);
        prop_assert_eq!(decode_downlink(&bytes).err(), expected);
    }

    #[test]
    fn wrong_first_byte_is_unsupported_version(
        version in any::<u8>().prop_filter("not ours", |v| *v != PROTOCOL_VERSION),
        rest in prop::collection::vec(any::<u8>(), 0..MAX_FRAME_LEN),
    ) {
        let mut bytes = rest;
        bytes.insert(0, version);
        let expected = Some(DecodeError::UnsupportedVersion { found: version });
        prop_assert_eq!(decode_uplink(&bytes).err(), expected);
        prop_assert_eq!(decode_downlink(&bytes).err(), expected);
    }

    #[test]
    fn confidence_above_100_is_refused_both_ways(
        frame in uplink_frame(),
        confidence_pct in 101..=u8::MAX,
        room in label(),
    ) {
        let mut frame = frame;
        frame.body = Uplink::Occupancy(Occupancy { room, students: 1, adults: 1, confidence_pct });
        let mut buf = [0u8; MAX_FRAME_LEN];
        let invalid = ("confidence_pct", "must be between 0 and 100");
        prop_assert_eq!(
            encode_uplink(&frame, &mut buf),
            Err(EncodeError::InvalidField { field: invalid.0, reason: invalid.1 })
        );
        // Build the bytes by hand from a valid frame: only the last byte (confidence) differs.
        frame.body = Uplink::Occupancy(Occupancy { room, students: 1, adults: 1, confidence_pct: 0 });
        let mut bytes = encode_uplink(&frame, &mut buf).unwrap().to_vec();
        *bytes.last_mut().unwrap() = confidence_pct;
        prop_assert_eq!(
            decode_uplink(&bytes),
            Err(DecodeError::InvalidField { field: invalid.0, reason: invalid.1 })
        );
    }
}
