//! Golden vectors: one frame per variant, pinned as exact bytes in `vectors/NAME.bin` and
//! described in `vectors/vectors.json` for firmware authors who test a C encoder against them.
//!
//! A normal run compares both ways (encode == file, decode(file) == frame) and fails on any
//! difference, because a changed byte is a protocol change. `UPDATE_VECTORS=1` rewrites the files
//! instead; do that only for new variants, or for a deliberate layout change that also bumps
//! `PROTOCOL_VERSION`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use firmware_protocol::{
    AckState, ButtonPress, CancelRequest, DOWN_TOPIC_TEMPLATE, DeviceConfig, Downlink,
    DownlinkFrame, FirmwareVersion, Frame, Heartbeat, Label, MAX_FRAME_LEN, Occupancy, PressAck,
    PressAction, PressMap, PressPattern, TimeSync, UP_TOPIC_TEMPLATE, Uplink, UplinkFrame,
    decode_downlink, decode_uplink, encode_downlink, encode_uplink,
};
use serde_json::{Value, json};

/// The device's identity in every uplink vector: boot 1234 and seq 70000 need 2- and 3-byte
/// varints, so a C encoder that only handles one-byte varints fails on the header already.
const DEVICE_BOOT: u32 = 1234;
const DEVICE_SEQ: u32 = 70_000;
/// The gateway's identity in every downlink vector.
const GATEWAY_BOOT: u32 = 17;
const GATEWAY_SEQ: u32 = 4_242;

enum Expected {
    Up(UplinkFrame),
    Down(DownlinkFrame),
}

fn expected_vectors() -> Vec<(&'static str, Expected)> {
    let up = |body| Expected::Up(Frame::new(DEVICE_BOOT, DEVICE_SEQ, body));
    let down = |body| Expected::Down(Frame::new(GATEWAY_BOOT, GATEWAY_SEQ, body));
    vec![
        (
            "uplink_button_press",
            up(Uplink::ButtonPress(ButtonPress {
                pattern: PressPattern::Double,
                press_seq: 300,
            })),
        ),
        (
            "uplink_heartbeat",
            up(Uplink::Heartbeat(Heartbeat {
                uptime_s: 259_200,
                firmware: FirmwareVersion {
                    major: 1,
                    minor: 4,
                    patch: 2,
                },
                battery_mv: 3_712,
                rssi_dbm: -67,
                free_heap: 183_456,
            })),
        ),
        (
            "uplink_occupancy",
            up(Uplink::Occupancy(Occupancy {
                room: Label::new("B-204 Sci.Lab_2").expect("a valid label"),
                students: 312,
                adults: 14,
                confidence_pct: 87,
            })),
        ),
        (
            "uplink_cancel_request",
            up(Uplink::CancelRequest(CancelRequest {
                press_boot: DEVICE_BOOT,
                press_seq: 300,
            })),
        ),
        (
            "downlink_press_ack",
            down(Downlink::PressAck(PressAck {
                press_boot: DEVICE_BOOT,
                press_seq: 300,
                state: AckState::Acknowledged,
            })),
        ),
        (
            "downlink_config",
            down(Downlink::Config(DeviceConfig {
                heartbeat_interval_s: 300,
                press_map: PressMap {
                    single: PressAction::Ignore,
                    double: PressAction::Medical,
                    long_hold: PressAction::Lockdown,
                },
            })),
        ),
        (
            "downlink_time_sync",
            down(Downlink::TimeSync(TimeSync {
                unix_ms: 1_767_225_600_123,
            })),
        ),
    ]
}

/// One vector as the files should hold it.
struct Vector {
    name: &'static str,
    bytes: Vec<u8>,
    json: Value,
    expected: Expected,
}

fn build(name: &'static str, expected: Expected) -> Vector {
    let mut buf = [0u8; MAX_FRAME_LEN];
    let (bytes, direction, template, frame) = match &expected {
        Expected::Up(f) => (
            encode_uplink(f, &mut buf)
                .expect("vector frames are valid")
                .to_vec(),
            "uplink",
            UP_TOPIC_TEMPLATE,
            serde_json::to_value(f).expect("frames are plain data"),
        ),
        Expected::Down(f) => (
            encode_downlink(f, &mut buf)
                .expect("vector frames are valid")
                .to_vec(),
            "downlink",
            DOWN_TOPIC_TEMPLATE,
            serde_json::to_value(f).expect("frames are plain data"),
        ),
    };
    let json = json!({
        "name": name,
        "file": format!("{name}.bin"),
        "direction": direction,
        "topic_template": template,
        "frame": frame,
        "hex": hex(&bytes),
    });
    Vector {
        name,
        bytes,
        json,
        expected,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

const HOW_TO_UPDATE: &str = "if this layout change is intended, bump PROTOCOL_VERSION and run \
     `UPDATE_VECTORS=1 cargo test -p firmware-protocol --test vectors`";

#[test]
fn golden_vectors() {
    let vectors: Vec<Vector> = expected_vectors()
        .into_iter()
        .map(|(n, e)| build(n, e))
        .collect();
    let json_all = Value::Array(vectors.iter().map(|v| v.json.clone()).collect());
    let dir = vectors_dir();

    if std::env::var("UPDATE_VECTORS").as_deref() == Ok("1") {
        fs::create_dir_all(&dir).unwrap();
        for v in &vectors {
            fs::write(dir.join(format!("{}.bin", v.name)), &v.bytes).unwrap();
        }
        let text = serde_json::to_string_pretty(&json_all).unwrap() + "\n";
        fs::write(dir.join("vectors.json"), text).unwrap();
        eprintln!("rewrote {} vectors in {}", vectors.len(), dir.display());
        return;
    }

    for v in &vectors {
        let file = dir.join(format!("{}.bin", v.name));
        let on_disk = fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            hex(&v.bytes),
            hex(&on_disk),
            "{}: encoding changed; {HOW_TO_UPDATE}",
            v.name
        );
        match &v.expected {
            Expected::Up(f) => assert_eq!(decode_uplink(&on_disk), Ok(*f), "{}", v.name),
            Expected::Down(f) => assert_eq!(decode_downlink(&on_disk), Ok(*f), "{}", v.name),
        }
    }

    let text = fs::read_to_string(dir.join("vectors.json")).unwrap();
    let on_disk: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(
        on_disk.len(),
        vectors.len(),
        "vectors.json lists a different set of vectors"
    );
    for (v, described) in vectors.iter().zip(&on_disk) {
        assert_eq!(
            described, &v.json,
            "{}: vectors.json is stale; {HOW_TO_UPDATE}",
            v.name
        );
    }

    let listed: BTreeSet<String> = vectors.iter().map(|v| format!("{}.bin", v.name)).collect();
    for entry in fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name == "vectors.json" || listed.contains(&name),
            "vectors/{name} is not checked by any vector in tests/vectors.rs"
        );
    }
}

/// Every variant of both enums has a vector; the exhaustive matches stop compiling when a
/// variant is appended without one.
#[test]
fn every_variant_has_a_vector() {
    let mut covered = BTreeSet::new();
    for (_, expected) in expected_vectors() {
        let variant = match expected {
            Expected::Up(f) => match f.body {
                Uplink::ButtonPress(_) => "up:ButtonPress",
                Uplink::Heartbeat(_) => "up:Heartbeat",
                Uplink::Occupancy(_) => "up:Occupancy",
                Uplink::CancelRequest(_) => "up:CancelRequest",
            },
            Expected::Down(f) => match f.body {
                Downlink::PressAck(_) => "down:PressAck",
                Downlink::Config(_) => "down:Config",
                Downlink::TimeSync(_) => "down:TimeSync",
            },
        };
        assert!(covered.insert(variant), "two vectors for {variant}");
    }
    assert_eq!(covered.len(), 7);
}

/// The variant index is the byte after the header; the README's table and the decoder's room
/// diagnosis both rely on these numbers.
#[test]
fn variant_indexes_follow_declaration_order() {
    let header_len = 1 + 2 + 3; // version, boot 1234, seq 70000
    let indexes: Vec<(&str, u8)> = expected_vectors()
        .into_iter()
        .map(|(name, e)| {
            let v = build(name, e);
            let header = if name.starts_with("uplink") {
                header_len
            } else {
                1 + 1 + 2
            };
            (name, v.bytes[header])
        })
        .collect();
    assert_eq!(
        indexes,
        [
            ("uplink_button_press", 0),
            ("uplink_heartbeat", 1),
            ("uplink_occupancy", 2),
            ("uplink_cancel_request", 3),
            ("downlink_press_ack", 0),
            ("downlink_config", 1),
            ("downlink_time_sync", 2),
        ]
    );
}
