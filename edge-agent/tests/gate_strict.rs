//! The gate reads MQTT 3.1.1 as strictly as the spec demands, over real TLS: for each "the
//! Server MUST close the Network Connection" rule, the raw bytes that break it are sent and the
//! connection is seen closed (with the CONNACK the spec wants first, where it wants one), while
//! the same connection's conforming neighbours keep working.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers;
// a test helper should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::device::{RawDevice, bundle_tls, connected, tls_config};
use common::{Gateway, ok, s};
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet};

/// Long enough for a loaded CI machine; every wait ends as soon as the gate closes.
const WAIT: Duration = Duration::from_secs(5);

/// A packet: `byte1`, the remaining length, `body`.
fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128, "one length byte is enough here");
    let mut out = vec![byte1, u8::try_from(body.len()).unwrap()];
    out.extend_from_slice(body);
    out
}

/// A length-prefixed field.
fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A CONNECT named `name` at `level` with connect `flags`, keep-alive 30, `client_id`, then
/// `rest` (the fields the flags announce, or an MQTT 5 CONNECT's properties).
fn connect(name: &[u8], level: u8, flags: u8, client_id: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut body = field(name);
    body.extend_from_slice(&[level, flags, 0, 30]);
    body.extend(field(client_id));
    body.extend_from_slice(rest);
    packet(0x10, &body)
}

/// `body` after a packet id of 1.
fn with_id(body: &[u8]) -> Vec<u8> {
    [&[0, 1][..], body].concat()
}

const CLEAN: u8 = 0x02;

/// The packets that break a rule once a device is connected, each with the rule it breaks.
fn after_connect(device: &str) -> Vec<(&'static str, Vec<u8>)> {
    let up = format!("d/{device}/up");
    let down = format!("d/{device}/down");
    let sub = |flags: u8, options: u8| {
        packet(
            0x80 | flags,
            &with_id(&[field(down.as_bytes()), vec![options]].concat()),
        )
    };
    let unsub = |flags: u8| packet(0xa0 | flags, &with_id(&field(down.as_bytes())));
    let publish = |byte1: u8, topic: &[u8]| packet(byte1, &[field(topic), b"x".to_vec()].concat());
    vec![
        ("MQTT-3.8.1-1 SUBSCRIBE flags 0000", sub(0b0000, 0)),
        ("MQTT-3.8.1-1 SUBSCRIBE flags 0011", sub(0b0011, 0)),
        (
            "MQTT-3.8.3-3 SUBSCRIBE without a filter",
            packet(0x82, &[0, 1]),
        ),
        (
            "MQTT-3.8.3-4 SUBSCRIBE reserved option bits",
            sub(0b0010, 0x80),
        ),
        ("MQTT-3.8.3-4 SUBSCRIBE QoS 3", sub(0b0010, 0x03)),
        ("MQTT-3.10.1-1 UNSUBSCRIBE flags 0000", unsub(0b0000)),
        ("MQTT-3.10.1-1 UNSUBSCRIBE flags 1010", unsub(0b1010)),
        (
            "MQTT-3.10.3-2 UNSUBSCRIBE without a filter",
            packet(0xa2, &[0, 1]),
        ),
        (
            "MQTT-4.7.1-2 UNSUBSCRIBE of a/#/b",
            packet(0xa2, &with_id(&field(b"a/#/b"))),
        ),
        (
            "MQTT-4.8.0-1 PINGREQ remaining length 1",
            packet(0xc0, &[0]),
        ),
        ("MQTT-2.2.2-2 PINGREQ flags 0001", packet(0xc1, &[])),
        (
            "MQTT-4.8.0-1 DISCONNECT remaining length 2",
            packet(0xe0, &[0, 0]),
        ),
        ("MQTT-3.14.1-1 DISCONNECT flags 0010", packet(0xe2, &[])),
        (
            "MQTT-3.3.1-2 DUP on a QoS 0 PUBLISH",
            publish(0x38, up.as_bytes()),
        ),
        ("MQTT-3.3.1-4 PUBLISH QoS 3", publish(0x36, up.as_bytes())),
        (
            "MQTT-1.5.3-1 PUBLISH topic not UTF-8",
            publish(0x30, b"d/\xff/up"),
        ),
        (
            "MQTT-1.5.3-2 PUBLISH topic with U+0000",
            publish(0x30, b"d/\x00/up"),
        ),
        (
            "MQTT-4.7.1-1 PUBLISH to a wildcard topic",
            publish(0x30, b"d/+/up"),
        ),
        ("MQTT-2.2.2-2 PUBACK flags 0001", packet(0x41, &[0, 1])),
        ("MQTT-3.6.1-1 PUBREL flags 0000", packet(0x60, &[0, 1])),
        (
            "MQTT-3.1.0-2 a second CONNECT",
            connect(b"MQTT", 4, CLEAN, device.as_bytes(), &[]),
        ),
        (
            "MQTT-4.8.0-1 a SUBACK from a client",
            packet(0x90, &[0, 1, 0]),
        ),
    ]
}

/// The malformed CONNECTs: closed without a CONNACK [MQTT-3.1.4-1].
fn malformed_connects(device: &str) -> Vec<(&'static str, Vec<u8>)> {
    let id = device.as_bytes();
    let will = [field(format!("d/{device}/up").as_bytes()), field(b"gone")].concat();
    vec![
        (
            "MQTT-3.1.2-3 CONNECT's reserved flag set",
            connect(b"MQTT", 4, CLEAN | 0x01, id, &[]),
        ),
        (
            "MQTT-3.1.2-22 a password flag without a user name flag",
            connect(b"MQTT", 4, CLEAN | 0x40, id, &field(b"secret")),
        ),
        (
            "MQTT-3.1.2-13 a will QoS without a will",
            connect(b"MQTT", 4, CLEAN | 0x08, id, &[]),
        ),
        (
            "MQTT-3.1.2-15 a will retain flag without a will",
            connect(b"MQTT", 4, CLEAN | 0x20, id, &[]),
        ),
        (
            "MQTT-3.1.2-14 will QoS 3",
            connect(b"MQTT", 4, CLEAN | 0x04 | 0x18, id, &will),
        ),
        (
            "MQTT-3.1.4-1 a user name the flags do not announce",
            connect(b"MQTT", 4, CLEAN, id, &field(b"user")),
        ),
        (
            "MQTT-3.1.2-1 protocol name MQTX",
            connect(b"MQTX", 4, CLEAN, id, &[]),
        ),
        (
            "MQTT-1.5.3-1 a client id that is not UTF-8",
            connect(b"MQTT", 4, CLEAN, b"btn-\xc3", &[]),
        ),
        (
            "MQTT-1.5.3-2 a client id with U+0000",
            connect(b"MQTT", 4, CLEAN, &[id, b"\x00"].concat(), &[]),
        ),
        ("MQTT-2.2.2-2 CONNECT flags 0001", {
            let mut bytes = connect(b"MQTT", 4, CLEAN, id, &[]);
            bytes[0] = 0x11;
            bytes
        }),
        ("MQTT-3.1.0-1 PINGREQ before CONNECT", packet(0xc0, &[])),
    ]
}

/// A TLS connection with `bundle`'s certificate that has sent `bytes` first.
async fn sent(
    gateway: &edge_agent::Gateway,
    config: &std::sync::Arc<rustls::ClientConfig>,
    bytes: &[u8],
) -> RawDevice {
    let mut client = RawDevice::tls(gateway.mqtt_addr, config.clone())
        .await
        .unwrap();
    client.send_raw(bytes).await.unwrap();
    client
}

#[tokio::test]
async fn each_must_close_rule_after_connect_closes_the_device_connection() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let mut gateway = gw.start().await;
    for (rule, bytes) in after_connect("btn-1") {
        let mut device = connected(gateway.mqtt_addr, &bundle, "btn-1").await;
        device.send_raw(&bytes).await.unwrap();
        assert!(device.closed_within(WAIT).await, "{rule}: still open");
    }
    assert!(
        gateway.uplinks.try_recv().is_err(),
        "a refused PUBLISH reached the agent"
    );
    // The conforming versions of the same packets are served.
    let mut device = connected(gateway.mqtt_addr, &bundle, "btn-1").await;
    device.subscribe("d/btn-1/down").await.unwrap();
    device.send_raw(&packet(0xc0, &[])).await.unwrap();
    assert!(matches!(
        device.recv(WAIT).await,
        Ok(Some(Packet::PingResp))
    ));
    device
        .send_raw(&packet(0xa2, &with_id(&field(b"d/btn-1/down"))))
        .await
        .unwrap();
    assert!(matches!(
        device.recv(WAIT).await,
        Ok(Some(Packet::UnsubAck(_)))
    ));
    device.publish("d/btn-1/up", b"fine").await.unwrap();
    assert_eq!(&gateway.uplinks.recv().await.unwrap().payload[..], b"fine");
    gateway.stop().await;
}

#[tokio::test]
async fn a_malformed_connect_is_closed_without_a_connack() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let gateway = gw.start().await;
    let config = bundle_tls(&bundle);
    for (rule, bytes) in malformed_connects("btn-1") {
        let mut client = sent(&gateway, &config, &bytes).await;
        match client.recv(WAIT).await {
            Err(_) => {}
            other => panic!("{rule}: expected the connection closed, got {other:?}"),
        }
    }
    assert_eq!(gateway.gate.connected_devices(), 0);
    let _device = connected(gateway.mqtt_addr, &bundle, "btn-1").await;
    gateway.stop().await;
}

#[tokio::test]
async fn other_protocol_levels_and_empty_persistent_ids_get_their_connack_code_then_close() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let gateway = gw.start().await;
    let config = bundle_tls(&bundle);
    let cases: [(&str, Vec<u8>, ConnectReturnCode); 5] = [
        (
            // As an ESP-IDF client set to MQTT 5 sends it: properties length 0 after the
            // keep-alive, then the client id.
            "MQTT-3.1.2-2 an MQTT 5 CONNECT",
            packet(
                0x10,
                &[field(b"MQTT"), vec![5, CLEAN, 0, 30, 0], field(b"btn-1")].concat(),
            ),
            ConnectReturnCode::RefusedProtocolVersion,
        ),
        (
            "MQTT-3.1.2-2 an MQTT 3.1 CONNECT",
            connect(b"MQIsdp", 3, CLEAN, b"btn-1", &[]),
            ConnectReturnCode::RefusedProtocolVersion,
        ),
        (
            "MQTT-3.1.2-2 protocol level 6",
            connect(b"MQTT", 6, CLEAN, b"btn-1", &[]),
            ConnectReturnCode::RefusedProtocolVersion,
        ),
        (
            "MQTT-3.1.2-2 protocol level 3 named MQTT",
            connect(b"MQTT", 3, CLEAN, b"btn-1", &[]),
            ConnectReturnCode::RefusedProtocolVersion,
        ),
        (
            "MQTT-3.1.3-8 an empty client id without a clean session",
            connect(b"MQTT", 4, 0, b"", &[]),
            ConnectReturnCode::BadClientId,
        ),
    ];
    for (rule, bytes, code) in cases {
        let mut client = sent(&gateway, &config, &bytes).await;
        match client.recv(WAIT).await {
            Ok(Some(Packet::ConnAck(ack))) => assert_eq!(ack.code, code, "{rule}"),
            other => panic!("{rule}: expected a CONNACK, got {other:?}"),
        }
        assert!(client.closed_within(WAIT).await, "{rule}: still open");
    }
    assert_eq!(gateway.gate.connected_devices(), 0);
    gateway.stop().await;
}

#[tokio::test]
async fn a_certificate_naming_no_registered_device_is_refused_with_code_5() {
    let gw = Gateway::init_local();
    gw.add("btn-1", "button", "A-101");
    let mut gateway = gw.start().await;
    // Signed by the gateway's CA, never registered.
    let (cert, key) = common::unregistered_device_cert(&gw, "ghost-1");
    let ghost = tls_config(&gw.data.join("ca.pem"), Some((&cert, &key)));
    for _ in 0..2 {
        // Twice: a refusal is not cached as an acceptance.
        let mut raw = RawDevice::tls(gateway.mqtt_addr, ghost.clone())
            .await
            .unwrap();
        let ack = raw.mqtt_connect("ghost-1").await.expect("a CONNACK");
        assert_eq!(ack.code, ConnectReturnCode::NotAuthorized);
        assert!(raw.closed_within(WAIT).await);
    }
    assert_eq!(gateway.gate.connected_devices(), 0);
    assert!(gateway.uplinks.try_recv().is_err());

    // A device registered while the gate runs gets in at once.
    let late = gw.add("btn-2", "button", "A-101");
    let mut device = connected(gateway.mqtt_addr, &late, "btn-2").await;
    device.publish("d/btn-2/up", b"new").await.unwrap();
    assert_eq!(&gateway.uplinks.recv().await.unwrap().payload[..], b"new");
    gateway.stop().await;
}

/// `integration add` into `tmp/<name>`; returns the client TLS config of its bundle.
fn integration(gw: &Gateway, name: &str) -> std::sync::Arc<rustls::ClientConfig> {
    let out = gw.tmp.path().join(name);
    ok(&[
        "integration",
        "add",
        "--data-dir",
        s(&gw.data),
        "--id",
        name,
        "--out",
        s(&out),
    ]);
    let file = |f: &str| Path::new(&out).join(f);
    tls_config(
        &file("ca.pem"),
        Some((&file("integration.pem"), &file("integration.key"))),
    )
}

#[tokio::test]
async fn an_integration_is_held_to_the_same_rules() {
    let gw = Gateway::init_local();
    let config = integration(&gw, "signage");
    let gateway = gw.start().await;
    let filter = field(b"hallwatch/#");
    let cases = [
        (
            "MQTT-3.8.1-1 SUBSCRIBE flags 0000",
            packet(0x80, &with_id(&[filter.clone(), vec![0]].concat())),
        ),
        (
            "MQTT-3.10.3-2 UNSUBSCRIBE without a filter",
            packet(0xa2, &[0, 1]),
        ),
        (
            "MQTT-4.8.0-1 PUBACK remaining length 3",
            packet(0x40, &[0, 1, 0]),
        ),
        (
            "MQTT-4.8.0-1 PINGREQ remaining length 1",
            packet(0xc0, &[0]),
        ),
    ];
    for (rule, bytes) in cases {
        let mut client = RawDevice::tls(gateway.mqtt_addr, config.clone())
            .await
            .unwrap();
        let ack = client
            .mqtt_connect_with(Connect::new("strobes-controller"))
            .await
            .expect("CONNACK");
        assert_eq!(ack.code, ConnectReturnCode::Success);
        client.send_raw(&bytes).await.unwrap();
        assert!(client.closed_within(WAIT).await, "{rule}: still open");
    }
    let mut client = RawDevice::tls(gateway.mqtt_addr, config).await.unwrap();
    client
        .mqtt_connect_with(Connect::new("strobes-controller"))
        .await
        .expect("CONNACK");
    client.subscribe("hallwatch/#").await.unwrap();
    assert_eq!(gateway.gate.connected_integrations(), 1);
    gateway.stop().await;
}
