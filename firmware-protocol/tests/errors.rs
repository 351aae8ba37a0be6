//! One concrete input per decode and encode error, so each message a firmware author may see
//! in a gateway log has a test that produces it.

use firmware_protocol::{
    ButtonPress, DecodeError, DeviceConfig, Downlink, DownlinkFrame, EncodeError, Frame, Label,
    MAX_FRAME_LEN, Occupancy, PressAction, PressMap, PressPattern, Uplink, UplinkFrame,
    decode_downlink, decode_uplink, encode_downlink, encode_uplink,
};

fn malformed(reason: &'static str) -> DecodeError {
    DecodeError::Malformed { reason }
}

/// Version 1, boot 0, seq 0: the shortest header, so the body starts at byte 3.
const HEADER: [u8; 3] = [1, 0, 0];

fn frame(body: &[u8]) -> Vec<u8> {
    [&HEADER[..], body].concat()
}

/// An occupancy frame whose room is `room`'s raw bytes, with valid counts after it.
fn occupancy_with_room(room: &[u8]) -> Vec<u8> {
    let mut bytes = frame(&[2, u8::try_from(room.len()).expect("test rooms are short")]);
    bytes.extend_from_slice(room);
    bytes.extend_from_slice(&[5, 1, 90]);
    bytes
}

#[test]
fn empty() {
    assert_eq!(decode_uplink(&[]), Err(DecodeError::Empty));
    assert_eq!(decode_downlink(&[]), Err(DecodeError::Empty));
}

#[test]
fn too_long_is_checked_before_anything_else() {
    // Byte 0 is a wrong version too: the length check must win.
    let bytes = [7u8; MAX_FRAME_LEN + 1];
    assert_eq!(
        decode_uplink(&bytes),
        Err(DecodeError::TooLong { len: 257 })
    );
    assert_eq!(
        decode_downlink(&bytes),
        Err(DecodeError::TooLong { len: 257 })
    );
}

#[test]
fn unsupported_version() {
    assert_eq!(
        decode_uplink(&[2, 0, 0, 0, 0, 0]),
        Err(DecodeError::UnsupportedVersion { found: 2 })
    );
    assert_eq!(
        decode_downlink(&[0]),
        Err(DecodeError::UnsupportedVersion { found: 0 })
    );
}

#[test]
fn malformed_frames() {
    let cut_short = malformed("frame ends in the middle of a field");
    assert_eq!(decode_uplink(&[1]), Err(cut_short));
    assert_eq!(
        decode_uplink(&frame(&[0, 1])),
        Err(cut_short),
        "press_seq missing"
    );

    let unknown = malformed("unknown variant index");
    assert_eq!(decode_uplink(&frame(&[4])), Err(unknown), "no fifth uplink");
    assert_eq!(
        decode_downlink(&frame(&[3])),
        Err(unknown),
        "no fourth downlink"
    );
    assert_eq!(
        decode_uplink(&frame(&[0, 3, 0])),
        Err(unknown),
        "no fourth press pattern"
    );
    assert_eq!(
        decode_downlink(&frame(&[1, 1, 0, 6, 0])),
        Err(unknown),
        "no seventh action"
    );

    let boot_overflows = [1, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 3, 0, 0];
    assert_eq!(
        decode_uplink(&boot_overflows),
        Err(malformed("varint is too long for its type"))
    );

    assert_eq!(
        decode_uplink(&occupancy_with_room(&[b'A', 0xff])),
        Err(malformed("string is not valid UTF-8"))
    );

    // Boot 0 written as two bytes (0x80 0x00): postcard would accept it, we do not.
    assert_eq!(
        decode_uplink(&[1, 0x80, 0x00, 0, 3, 0, 0]),
        Err(malformed("varint is not in its shortest form"))
    );
}

#[test]
fn trailing_bytes() {
    let mut bytes = frame(&[3, 0, 0]);
    assert!(decode_uplink(&bytes).is_ok());
    bytes.extend_from_slice(&[0, 0]);
    assert_eq!(
        decode_uplink(&bytes),
        Err(DecodeError::TrailingBytes { extra: 2 })
    );
}

#[test]
fn invalid_fields() {
    let invalid = |field, reason| Some(DecodeError::InvalidField { field, reason });
    assert_eq!(
        decode_uplink(&frame(&[2, 1, b'A', 0, 0, 101])).err(),
        invalid("confidence_pct", "must be between 0 and 100")
    );
    assert_eq!(
        decode_downlink(&frame(&[1, 0, 1, 1, 1])).err(),
        invalid("heartbeat_interval_s", "must be at least 1")
    );
    let bad_char = "may contain only ASCII letters, digits, '-', '_', '.' and space";
    assert_eq!(
        decode_uplink(&occupancy_with_room(b"B/204")).err(),
        invalid("room", bad_char)
    );
    assert_eq!(
        decode_uplink(&occupancy_with_room(b"")).err(),
        invalid("room", "must not be empty")
    );
    assert_eq!(
        decode_uplink(&occupancy_with_room(&[b'x'; 33])).err(),
        invalid("room", "must be at most 32 bytes")
    );
}

#[test]
fn decode_errors_read_as_sentences() {
    assert_eq!(DecodeError::Empty.to_string(), "frame is empty");
    assert_eq!(
        DecodeError::TooLong { len: 300 }.to_string(),
        "frame is 300 bytes long, the limit is 256 bytes"
    );
    assert_eq!(
        DecodeError::UnsupportedVersion { found: 2 }.to_string(),
        "frame is protocol version 2, this side speaks version 1"
    );
    assert_eq!(
        DecodeError::InvalidField {
            field: "room",
            reason: "must not be empty"
        }
        .to_string(),
        "frame field `room` is invalid: must not be empty"
    );
}

// === encoding ===

fn button_press() -> UplinkFrame {
    Frame::new(
        1,
        2,
        Uplink::ButtonPress(ButtonPress {
            pattern: PressPattern::Single,
            press_seq: 1,
        }),
    )
}

#[test]
fn encode_refuses_other_versions() {
    let mut frame = button_press();
    frame.version = 2;
    let mut buf = [0u8; MAX_FRAME_LEN];
    assert_eq!(
        encode_uplink(&frame, &mut buf),
        Err(EncodeError::UnsupportedVersion { found: 2 })
    );
}

#[test]
fn encode_refuses_invalid_fields() {
    let frame: DownlinkFrame = Frame::new(
        1,
        1,
        Downlink::Config(DeviceConfig {
            heartbeat_interval_s: 0,
            press_map: PressMap {
                single: PressAction::Ignore,
                double: PressAction::Panic,
                long_hold: PressAction::Fire,
            },
        }),
    );
    let mut buf = [0u8; MAX_FRAME_LEN];
    assert_eq!(
        encode_downlink(&frame, &mut buf),
        Err(EncodeError::InvalidField {
            field: "heartbeat_interval_s",
            reason: "must be at least 1"
        })
    );
}

#[test]
fn encode_reports_a_small_buffer_with_the_needed_size() {
    let mut buf = [0u8; 4];
    assert_eq!(
        encode_uplink(&button_press(), &mut buf),
        Err(EncodeError::BufferTooSmall {
            needed: 6,
            capacity: 4
        })
    );
    let mut exact = [0u8; 6];
    assert_eq!(
        encode_uplink(&button_press(), &mut exact),
        Ok(&[1, 1, 2, 0, 0, 1][..])
    );
}

/// `EncodeError::FrameTooLong` cannot happen with today's frames; this pins the margin so an
/// appended variant that gets near the limit is noticed.
#[test]
fn the_largest_frame_today_fits_with_room_to_spare() {
    let frame = Frame::new(
        u32::MAX,
        u32::MAX,
        Uplink::Occupancy(Occupancy {
            room: Label::new(&"W".repeat(Label::MAX_LEN)).unwrap(),
            students: u16::MAX,
            adults: u16::MAX,
            confidence_pct: 100,
        }),
    );
    let mut buf = [0u8; MAX_FRAME_LEN];
    let len = encode_uplink(&frame, &mut buf).unwrap().len();
    assert_eq!(len, 1 + 5 + 5 + 1 + (1 + 32) + 3 + 3 + 1);
    assert!(len * 4 < MAX_FRAME_LEN);
}
