//! Golden vectors: the exact bytes of the sync format, one per message type.
//!
//! Postcard is not self-describing, so the bytes *are* the contract with gateways already in
//! schools. If one of these tests fails, the change is incompatible with deployed peers:
//! either restore the old layout (append, never reorder) or bump `SYNC_FORMAT_VERSION`.
//!
//! The payload is pinned at the postcard level, because zstd may compress the same payload
//! differently between library versions; a full envelope is pinned on the decoding side,
//! which the zstd format guarantees forever.

use shared::alert::{Actor, AlertEventKind, AlertKind, AlertState, Severity, Source};
use shared::ids::{AlertId, CommandId, Epoch, Seq};
use shared::sync::{
    AlertEventRecord, Command, CommandBody, CommandOutcome, CommandResult, DeviceHealthRecord,
    DeviceStatus, DropReason, Dropped, Lane, Limits, Record, RecordBody, SyncAck, SyncBatch,
    decode_ack, decode_batch, encode_ack, encode_batch,
};
use shared::{SchoolSnapshot, SnapshotCounts, UnixMillis};

fn alert() -> AlertId {
    "0191b6ca-58c0-7abc-8def-0123456789ab"
        .parse()
        .expect("valid fixture")
}

fn command() -> CommandId {
    "0191b6ca-58c0-7000-8000-00000000c0de"
        .parse()
        .expect("valid fixture")
}

/// One record of every kind.
fn batch() -> SyncBatch {
    let at = UnixMillis::new(1_725_348_600_000);
    let counts = SnapshotCounts {
        students_total: 1_214,
        students_present: 1_130,
        teachers_present: 87,
        active_alerts: 1,
        devices_online: 39,
        devices_offline: 1,
    };
    let bodies = [
        RecordBody::AlertEvent(AlertEventRecord {
            alert_id: alert(),
            kind: AlertKind::Medical,
            severity: Severity::High,
            state: AlertState::Acknowledged,
            event: AlertEventKind::Acknowledged,
            device_id: Some("pb-1".parse().expect("valid fixture")),
            room: Some("B-214".into()),
            actor: Some(Actor::new(Source::LocalDashboard, "ma")),
            press_count: 2,
        }),
        RecordBody::DeviceHealth(DeviceHealthRecord {
            device_id: "pb-2".parse().expect("valid fixture"),
            status: DeviceStatus::BatteryLow,
            battery_mv: Some(2_310),
            rssi_dbm: Some(-71),
        }),
        RecordBody::Snapshot(SchoolSnapshot::new(
            "s1".parse().expect("valid fixture"),
            at,
            counts,
        )),
        RecordBody::CommandResult(CommandResult {
            command_id: command(),
            outcome: CommandOutcome::Rejected {
                reason: "closed".into(),
            },
        }),
        RecordBody::Dropped(Dropped {
            through: Seq::new(9),
            reason: DropReason::Thinned,
        }),
    ];
    let records = bodies
        .into_iter()
        .zip(1..)
        .map(|(body, n)| Record {
            seq: Seq::new(n),
            at: UnixMillis::new(at.get() + n as i64),
            body,
        })
        .collect();
    SyncBatch {
        gateway_id: "gw1".parse().expect("valid fixture"),
        school_id: "s1".parse().expect("valid fixture"),
        epoch: Epoch::new(0x0102_0304_0506_0708).expect("non-zero"),
        lane: Lane::Telemetry,
        records,
    }
}

fn ack() -> SyncAck {
    SyncAck {
        acked_through: Seq::new(300),
        commands: vec![
            Command {
                id: command(),
                body: CommandBody::Acknowledge {
                    alert_id: alert(),
                    by: "p".into(),
                },
            },
            Command {
                id: command(),
                body: CommandBody::Resolve {
                    alert_id: alert(),
                    by: "p".into(),
                },
            },
            Command {
                id: command(),
                body: CommandBody::RevokeDevice {
                    device_id: "pb-2".parse().expect("valid fixture"),
                },
            },
            Command {
                id: command(),
                body: CommandBody::Cancel {
                    alert_id: alert(),
                    by: "p".into(),
                },
            },
        ],
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Reads as: `03 "gw1"`, `02 "s1"`, `888e98a8c0e0808101` epoch (varint), `01` Telemetry,
/// `05` records; record 1 is `01` seq, `82e3d2ecb664` at
/// (zigzag varint), `00` AlertEvent, `10` + 16 bytes alert id, `01` Medical, `02` High, ...
const BATCH_PAYLOAD: &str = "03677731027331888e98a8c0e080810101050182e3d2ecb66400100191b6ca58c07abc8def0123456789ab01020203010470622d310105422d3231340101026d61020284e3d2ecb664010470622d320201861201b90386e3d2ecb6640202733180e3d2ecb664be09ea0854570127010488e3d2ecb66403100191b6ca58c07000800000000000c0de0106636c6f736564058ae3d2ecb664040900";
/// Reads as: `ac02` acked through 300, `04` commands, each a `10`-prefixed id and a tag.
const ACK_PAYLOAD: &str = "ac0204100191b6ca58c07000800000000000c0de00100191b6ca58c07abc8def0123456789ab0170100191b6ca58c07000800000000000c0de01100191b6ca58c07abc8def0123456789ab0170100191b6ca58c07000800000000000c0de020470622d32100191b6ca58c07000800000000000c0de03100191b6ca58c07abc8def0123456789ab0170";
/// Written by this crate's encoder (zstd level 3, with checksum) when the format was fixed.
const BATCH_ENVELOPE: &str = "020028b52ffd249a5d0400640703677731027331888e98a8c0e080810101050182e3d2ecb66400100191b6ca58c07abc8def0123456789ab01020203010470622d310105422d3231340101026d61020284320201861201b903860202733180be09ea08545701270104880370008000c0de0106636c6f736564058ae3d2ecb6640409000700782030e49dd97c8b689b773d1b105350668ebb4874";

#[test]
fn golden_batch_payload() {
    assert_eq!(
        hex(&postcard::to_allocvec(&batch()).unwrap()),
        BATCH_PAYLOAD
    );
}

#[test]
fn golden_ack_payload() {
    assert_eq!(hex(&postcard::to_allocvec(&ack()).unwrap()), ACK_PAYLOAD);
    let bytes = encode_ack(&ack()).unwrap();
    assert_eq!(decode_ack(&bytes, &Limits::default()).unwrap(), ack());
}

#[test]
fn golden_batch_envelope_still_decodes() {
    // Not compared with the encoder's current output: only decoding is promised forever.
    let envelope = encode_batch(&batch()).unwrap();
    assert_eq!(hex(&envelope[..2]), "0200", "version 2, little-endian");
    assert_eq!(
        decode_batch(&unhex(BATCH_ENVELOPE), &Limits::default()).unwrap(),
        batch()
    );
}
