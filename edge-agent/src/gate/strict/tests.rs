//! One table row per rule: the bytes a client sends, and the rule the gate refuses them by (or
//! none, for the packets that conform).

use super::*;

/// A packet: `byte1`, the remaining length, `body`.
fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![byte1];
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        out.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A length-prefixed field.
fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A CONNECT named `name` at `level` with connect `flags`, keep-alive 30, `client_id` and then
/// `payload` (the fields the flags announce).
fn connect(name: &[u8], level: u8, flags: u8, client_id: &[u8], payload: &[&[u8]]) -> Vec<u8> {
    let mut body = field(name);
    body.extend_from_slice(&[level, flags, 0, 30]);
    body.extend(field(client_id));
    for part in payload {
        body.extend_from_slice(part);
    }
    packet(0x10, &body)
}

fn publish(byte1: u8, topic: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut body = field(topic);
    body.extend_from_slice(rest);
    packet(byte1, &body)
}

/// A SUBSCRIBE (packet id 1) with `filters` and their option bytes.
fn subscribe(byte1: u8, filters: &[(&[u8], u8)]) -> Vec<u8> {
    let mut body = vec![0, 1];
    for (filter, options) in filters {
        body.extend(field(filter));
        body.push(*options);
    }
    packet(byte1, &body)
}

/// An UNSUBSCRIBE (packet id 1) with `filters`.
fn unsubscribe(byte1: u8, filters: &[&[u8]]) -> Vec<u8> {
    let mut body = vec![0, 1];
    for filter in filters {
        body.extend(field(filter));
    }
    packet(byte1, &body)
}

fn verdict(bytes: &[u8]) -> Result<(), &'static str> {
    check(frame(bytes, usize::MAX).expect("a complete packet")).map_err(|r| r.rule)
}

const CLEAN: u8 = 0x02;

#[test]
fn conforming_packets_pass() {
    let will: &[u8] = &[field(b"d/btn-1/up"), field(b"\x00\xff")].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("CONNECT", connect(b"MQTT", 4, CLEAN, b"btn-1", &[])),
        (
            "CONNECT, empty client id",
            connect(b"MQTT", 4, CLEAN, b"", &[]),
        ),
        (
            "CONNECT with will, user and password (binary)",
            connect(
                b"MQTT",
                4,
                CLEAN | 0x04 | 0x08 | 0x20 | 0x80 | 0x40,
                b"btn-1",
                &[will, &field("usér".as_bytes()), &field(b"\xff\x00")],
            ),
        ),
        ("PUBLISH QoS 0", publish(0x30, b"d/btn-1/up", b"payload")),
        (
            "PUBLISH QoS 1, DUP, retain",
            publish(0x3b, b"d/btn-1/up", b"\x00\x07x"),
        ),
        ("PUBLISH with an empty payload", publish(0x30, b"a", b"")),
        (
            "SUBSCRIBE",
            subscribe(0x82, &[(b"d/btn-1/down", 1), (b"hallwatch/#", 2)]),
        ),
        (
            "SUBSCRIBE wildcards",
            subscribe(0x82, &[(b"#", 0), (b"+", 0), (b"+/a/+/#", 0), (b"/", 0)]),
        ),
        ("UNSUBSCRIBE", unsubscribe(0xa2, &[b"d/btn-1/down", b"a/+"])),
        ("PUBACK", packet(0x40, &[0, 1])),
        ("PUBREL", packet(0x62, &[0, 1])),
        ("PINGREQ", packet(0xc0, &[])),
        ("DISCONNECT", packet(0xe0, &[])),
    ];
    for (what, bytes) in cases {
        assert_eq!(verdict(&bytes), Ok(()), "{what}");
    }
}

#[test]
fn each_must_close_rule_refuses_its_packet() {
    let ok_will: &[u8] = &field(b"d/btn-1/up");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // CONNECT
        (
            "CONNECT's reserved flag set",
            connect(b"MQTT", 4, CLEAN | 0x01, b"btn-1", &[]),
            "MQTT-3.1.2-3",
        ),
        (
            "password flag without user name flag",
            connect(b"MQTT", 4, CLEAN | 0x40, b"btn-1", &[&field(b"pw")]),
            "MQTT-3.1.2-22",
        ),
        (
            "will QoS without a will",
            connect(b"MQTT", 4, CLEAN | 0x08, b"btn-1", &[]),
            "MQTT-3.1.2-13",
        ),
        (
            "will retain without a will",
            connect(b"MQTT", 4, CLEAN | 0x20, b"btn-1", &[]),
            "MQTT-3.1.2-15",
        ),
        (
            "will QoS 3",
            connect(
                b"MQTT",
                4,
                CLEAN | 0x04 | 0x18,
                b"btn-1",
                &[ok_will, &field(b"x")],
            ),
            "MQTT-3.1.2-14",
        ),
        (
            "a wildcard in the will topic",
            connect(
                b"MQTT",
                4,
                CLEAN | 0x04,
                b"btn-1",
                &[&field(b"d/+/up"), &field(b"x")],
            ),
            "MQTT-4.7.1-1",
        ),
        (
            "a will flag without a will",
            connect(b"MQTT", 4, CLEAN | 0x04, b"btn-1", &[]),
            "MQTT-4.8.0-1",
        ),
        (
            "a user name the flags do not announce",
            connect(b"MQTT", 4, CLEAN, b"btn-1", &[&field(b"user")]),
            "MQTT-3.1.4-1",
        ),
        (
            "a protocol name other than MQTT",
            connect(b"MQTX", 4, CLEAN, b"btn-1", &[]),
            "MQTT-3.1.2-1",
        ),
        (
            "an empty client id without a clean session",
            connect(b"MQTT", 4, 0, b"", &[]),
            "MQTT-3.1.3-8",
        ),
        (
            "ill-formed UTF-8 in the client id",
            connect(b"MQTT", 4, CLEAN, b"btn-\xff", &[]),
            "MQTT-1.5.3-1",
        ),
        (
            "a surrogate (U+D800) in the client id",
            connect(b"MQTT", 4, CLEAN, b"\xed\xa0\x80", &[]),
            "MQTT-1.5.3-1",
        ),
        (
            "U+0000 in the client id",
            connect(b"MQTT", 4, CLEAN, b"btn\x001", &[]),
            "MQTT-1.5.3-2",
        ),
        (
            "U+0000 in the user name",
            connect(b"MQTT", 4, CLEAN | 0x80, b"btn-1", &[&field(b"a\x00")]),
            "MQTT-1.5.3-2",
        ),
        (
            "CONNECT flags 0001",
            {
                let mut p = connect(b"MQTT", 4, CLEAN, b"btn-1", &[]);
                p[0] = 0x11;
                p
            },
            "MQTT-2.2.2-2",
        ),
        // PUBLISH
        (
            "PUBLISH QoS 3",
            publish(0x36, b"d/btn-1/up", b"\x00\x01"),
            "MQTT-3.3.1-4",
        ),
        (
            "DUP on a QoS 0 PUBLISH",
            publish(0x38, b"d/btn-1/up", b""),
            "MQTT-3.3.1-2",
        ),
        (
            "a wildcard in a topic name",
            publish(0x30, b"d/#", b""),
            "MQTT-4.7.1-1",
        ),
        (
            "an empty topic name",
            publish(0x30, b"", b"x"),
            "MQTT-4.7.3-1",
        ),
        (
            "U+0000 in a topic name",
            publish(0x30, b"d/\x00", b""),
            "MQTT-1.5.3-2",
        ),
        (
            "ill-formed UTF-8 in a topic name",
            publish(0x30, b"d/\xc3", b""),
            "MQTT-1.5.3-1",
        ),
        (
            "QoS 1 with packet id 0",
            publish(0x32, b"a", b"\x00\x00"),
            "MQTT-2.3.1-1",
        ),
        (
            "QoS 1 without a packet id",
            publish(0x32, b"a", b""),
            "MQTT-4.8.0-1",
        ),
        // SUBSCRIBE
        (
            "SUBSCRIBE flags 0000",
            subscribe(0x80, &[(b"d/btn-1/down", 0)]),
            "MQTT-3.8.1-1",
        ),
        (
            "SUBSCRIBE flags 0011",
            subscribe(0x83, &[(b"d/btn-1/down", 0)]),
            "MQTT-3.8.1-1",
        ),
        (
            "SUBSCRIBE without a filter",
            subscribe(0x82, &[]),
            "MQTT-3.8.3-3",
        ),
        (
            "SUBSCRIBE options with reserved bits",
            subscribe(0x82, &[(b"d/btn-1/down", 0x04)]),
            "MQTT-3.8.3-4",
        ),
        (
            "SUBSCRIBE QoS 3",
            subscribe(0x82, &[(b"d/btn-1/down", 0x03)]),
            "MQTT-3.8.3-4",
        ),
        (
            "SUBSCRIBE filter without its options byte",
            packet(0x82, &[&[0u8, 1][..], &field(b"a")].concat()),
            "MQTT-4.8.0-1",
        ),
        (
            "'#' not last",
            subscribe(0x82, &[(b"a/#/b", 0)]),
            "MQTT-4.7.1-2",
        ),
        (
            "'#' inside a level",
            subscribe(0x82, &[(b"a/b#", 0)]),
            "MQTT-4.7.1-2",
        ),
        (
            "'+' inside a level",
            subscribe(0x82, &[(b"a/b+", 0)]),
            "MQTT-4.7.1-3",
        ),
        (
            "an empty filter",
            subscribe(0x82, &[(b"", 0)]),
            "MQTT-4.7.3-1",
        ),
        (
            "U+0000 in a filter",
            subscribe(0x82, &[(b"a\x00", 0)]),
            "MQTT-1.5.3-2",
        ),
        (
            "SUBSCRIBE packet id 0",
            packet(0x82, &[&[0u8, 0][..], &field(b"a"), &[0]].concat()),
            "MQTT-2.3.1-1",
        ),
        // UNSUBSCRIBE
        (
            "UNSUBSCRIBE flags 0000",
            unsubscribe(0xa0, &[b"d/btn-1/down"]),
            "MQTT-3.10.1-1",
        ),
        (
            "UNSUBSCRIBE flags 1010",
            unsubscribe(0xaa, &[b"d/btn-1/down"]),
            "MQTT-3.10.1-1",
        ),
        (
            "UNSUBSCRIBE without a filter",
            unsubscribe(0xa2, &[]),
            "MQTT-3.10.3-2",
        ),
        (
            "UNSUBSCRIBE '+' inside a level",
            unsubscribe(0xa2, &[b"a+"]),
            "MQTT-4.7.1-3",
        ),
        (
            "UNSUBSCRIBE ill-formed UTF-8",
            unsubscribe(0xa2, &[b"\xff"]),
            "MQTT-1.5.3-1",
        ),
        // The packets without a payload.
        ("PINGREQ with a body", packet(0xc0, &[0]), "MQTT-4.8.0-1"),
        ("PINGREQ flags 0001", packet(0xc1, &[]), "MQTT-2.2.2-2"),
        (
            "DISCONNECT with a body",
            packet(0xe0, &[0, 0]),
            "MQTT-4.8.0-1",
        ),
        ("DISCONNECT flags 0100", packet(0xe4, &[]), "MQTT-3.14.1-1"),
        ("PUBACK flags 0001", packet(0x41, &[0, 1]), "MQTT-2.2.2-2"),
        (
            "PUBACK with 3 bytes",
            packet(0x40, &[0, 1, 0]),
            "MQTT-4.8.0-1",
        ),
        ("PUBREC flags 0010", packet(0x52, &[0, 1]), "MQTT-2.2.2-2"),
        ("PUBREL flags 0000", packet(0x60, &[0, 1]), "MQTT-3.6.1-1"),
        ("PUBCOMP flags 1000", packet(0x78, &[0, 1]), "MQTT-2.2.2-2"),
        // Packets no client sends.
        ("CONNACK", packet(0x20, &[0, 0]), "MQTT-4.8.0-1"),
        ("SUBACK", packet(0x90, &[0, 1, 0]), "MQTT-4.8.0-1"),
        ("UNSUBACK", packet(0xb0, &[0, 1]), "MQTT-4.8.0-1"),
        ("PINGRESP", packet(0xd0, &[]), "MQTT-4.8.0-1"),
        ("type 0", packet(0x00, &[]), "MQTT-4.8.0-1"),
        ("type 15", packet(0xf0, &[0, 0]), "MQTT-4.8.0-1"),
    ];
    for (what, bytes, rule) in cases {
        assert_eq!(verdict(&bytes), Err(rule), "{what}: {bytes:02x?}");
    }
}

#[test]
fn other_protocol_levels_are_answered_with_connack_code_1() {
    for (name, level) in [
        (&b"MQTT"[..], 5),
        (b"MQTT", 3),
        (b"MQTT", 0),
        (b"MQIsdp", 3),
    ] {
        // The rest of an MQTT 5 CONNECT (properties) would not parse as 3.1.1: the level alone
        // decides.
        let bytes = connect(name, level, CLEAN | 0x01, b"\xff", &[&[9, 9]]);
        let refusal = check(frame(&bytes, usize::MAX).unwrap()).unwrap_err();
        assert_eq!(refusal.rule, "MQTT-3.1.2-2");
        assert_eq!(
            refusal.connack,
            Some(ConnectReturnCode::RefusedProtocolVersion),
            "{name:?} {level}"
        );
    }
    let empty_id = connect(b"MQTT", 4, 0, b"", &[]);
    let refusal = check(frame(&empty_id, usize::MAX).unwrap()).unwrap_err();
    assert_eq!(refusal.connack, Some(ConnectReturnCode::BadClientId));
    let reserved = connect(b"MQTT", 4, CLEAN | 0x01, b"btn-1", &[]);
    let refusal = check(frame(&reserved, usize::MAX).unwrap()).unwrap_err();
    assert_eq!(refusal.connack, None, "a malformed CONNECT gets no CONNACK");
}

#[test]
fn only_whole_packets_within_the_limit_are_framed() {
    let ping = packet(0xc0, &[]);
    assert!(frame(&ping[..1], 10).is_none(), "no remaining length yet");
    let publish = publish(0x30, b"a", &[7; 200]);
    assert_eq!(frame(&publish, 1024).unwrap().body.len(), 203);
    assert!(
        frame(&publish[..publish.len() - 1], 1024).is_none(),
        "incomplete"
    );
    assert!(
        frame(&publish, 100).is_none(),
        "oversized: mqttbytes says so"
    );
    // Two packets in the buffer: only the first is framed.
    let two = [ping.clone(), publish.clone()].concat();
    let first = frame(&two, 1024).unwrap();
    assert_eq!((first.byte1, first.body.len()), (0xc0, 0));
    // A remaining length that never ends within four bytes is mqttbytes' to refuse.
    assert!(frame(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], usize::MAX).is_none());
}
