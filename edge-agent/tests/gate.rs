//! The device gate against real TLS clients: who gets in, what they may do, and that one
//! misbehaving connection never affects another.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers;
// a test helper should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::Gateway;
use common::device::{RawDevice, bundle_tls, connected, tls_config};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet, Publish, Subscribe};
use shared::ids::DeviceId;

const WAIT: Duration = Duration::from_secs(3);

fn id(s: &str) -> DeviceId {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_device_publishes_to_the_agent_and_receives_downlinks() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let mut gateway = gw.start().await;
    let mut device = connected(gateway.mqtt_addr, &bundle, "btn-1").await;
    device.subscribe("d/btn-1/down").await.unwrap();

    device.publish("d/btn-1/up", b"\x01\x02\x03").await.unwrap();
    let uplink = tokio::time::timeout(WAIT, gateway.uplinks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(uplink.device_id, id("btn-1"));
    assert_eq!(&uplink.payload[..], b"\x01\x02\x03");

    gateway
        .downlinks
        .send(id("btn-1"), b"ack!".to_vec().into())
        .unwrap();
    match device.recv(WAIT).await.unwrap() {
        Some(Packet::Publish(p)) => {
            assert_eq!(p.topic, "d/btn-1/down");
            assert_eq!(&p.payload[..], b"ack!");
        }
        other => panic!("expected the downlink, got {other:?}"),
    }
    assert_eq!(gateway.gate.connected_devices(), 1);
    gateway.stop().await;
}

#[tokio::test]
async fn handshakes_without_a_valid_certificate_are_refused() {
    let gw = Gateway::init_local();
    let good = gw.add("btn-1", "button", "A-101");
    let revoked = gw.add("btn-2", "button", "A-102");
    gw.revoke("btn-2");
    // The same device id, certified by another gateway's CA.
    let other = Gateway::init_local();
    let foreign = other.add("btn-1", "button", "A-101");
    let expired = common::expired_device_cert(&gw, "btn-3");
    let mut gateway = gw.start().await;

    let ca = good.join("ca.pem");
    let cases = [
        ("no client certificate", tls_config(&ca, None)),
        (
            "certificate from another CA",
            tls_config(
                &ca,
                Some((&foreign.join("device.pem"), &foreign.join("device.key"))),
            ),
        ),
        (
            "expired certificate",
            tls_config(&ca, Some((&expired.0, &expired.1))),
        ),
        ("revoked certificate", bundle_tls(&revoked)),
    ];
    for (what, config) in cases {
        let refused = match RawDevice::tls(gateway.mqtt_addr, config).await {
            Err(_) => true, // TLS 1.2, or the alert arrived during the handshake
            Ok(mut device) => device.mqtt_connect("btn-1").await.is_none(),
        };
        assert!(refused, "{what}: the gate let it in");
    }
    assert_eq!(gateway.gate.connected_devices(), 0);
    assert!(gateway.uplinks.try_recv().is_err());

    // The valid device still gets in.
    let _device = connected(gateway.mqtt_addr, &good, "btn-1").await;
    gateway.stop().await;
}

#[tokio::test]
async fn revoking_a_connected_device_disconnects_it_within_two_seconds() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let other = gw.add("btn-2", "button", "A-102");
    let gateway = gw.start().await;
    let mut device = connected(gateway.mqtt_addr, &bundle, "btn-1").await;
    let mut bystander = connected(gateway.mqtt_addr, &other, "btn-2").await;

    gw.revoke("btn-1");
    let revoked_at = Instant::now();
    assert!(
        device.closed_within(Duration::from_secs(2)).await,
        "still connected after 2 s"
    );
    println!("disconnected {:?} after revocation", revoked_at.elapsed());
    bystander
        .publish("d/btn-2/up", b"still here")
        .await
        .unwrap();
    gateway.stop().await;
}

#[tokio::test]
async fn a_device_using_another_devices_client_id_is_refused() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    gw.add("btn-2", "button", "A-102");
    let gateway = gw.start().await;
    let mut device = RawDevice::tls(gateway.mqtt_addr, bundle_tls(&bundle))
        .await
        .unwrap();
    let ack = device.mqtt_connect("btn-2").await;
    assert!(
        ack.as_ref()
            .is_none_or(|ack| ack.code != ConnectReturnCode::Success),
        "{ack:?}"
    );
    assert!(device.closed_within(WAIT).await);
    assert_eq!(gateway.gate.connected_devices(), 0);
    gateway.stop().await;
}

#[tokio::test]
async fn leaving_the_own_namespace_disconnects_and_leaks_nothing() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let other = gw.add("btn-2", "button", "A-102");
    let mut gateway = gw.start().await;

    let publishes = [
        "d/btn-2/up",
        "d/btn-1/down",
        "d/btn-1/up/x",
        "hallwatch/status",
        "$SYS/x",
    ];
    for topic in publishes {
        let mut device = connected(gateway.mqtt_addr, &bundle, "btn-1").await;
        let publish = Publish::new(topic, QoS::AtMostOnce, b"x".to_vec());
        device.send(Packet::Publish(publish)).await.unwrap();
        assert!(
            device.closed_within(WAIT).await,
            "publish to {topic} was allowed"
        );
    }
    let filters = [
        "#",
        "+/btn-1/down",
        "d/+/up",
        "d/btn-2/down",
        "$SYS/#",
        "d/btn-1/#",
    ];
    for filter in filters {
        let mut device = connected(gateway.mqtt_addr, &bundle, "btn-1").await;
        let mut subscribe = Subscribe::new(filter, QoS::AtMostOnce);
        subscribe.pkid = 1;
        device.send(Packet::Subscribe(subscribe)).await.unwrap();
        assert!(
            device.closed_within(WAIT).await,
            "subscribe to {filter} was allowed"
        );
    }
    assert!(
        gateway.uplinks.try_recv().is_err(),
        "a refused publish reached the agent"
    );

    // Two well-behaved devices: each sees only its own downlinks.
    let mut one = connected(gateway.mqtt_addr, &bundle, "btn-1").await;
    let mut two = connected(gateway.mqtt_addr, &other, "btn-2").await;
    one.subscribe("d/btn-1/down").await.unwrap();
    two.subscribe("d/btn-2/down").await.unwrap();
    gateway
        .downlinks
        .send(id("btn-2"), b"for two".to_vec().into())
        .unwrap();
    assert!(matches!(
        two.recv(WAIT).await.unwrap(),
        Some(Packet::Publish(_))
    ));
    assert!(
        one.recv(Duration::from_millis(500))
            .await
            .unwrap()
            .is_none()
    );
    gateway.stop().await;
}

#[tokio::test]
async fn oversized_and_malformed_packets_close_only_that_connection() {
    let gw = Gateway::init_local();
    let good = gw.add("btn-1", "button", "A-101");
    let big = gw.add("btn-2", "button", "A-102");
    let junk = gw.add("btn-3", "button", "A-103");
    let mut gateway = gw.start().await;
    let mut device = connected(gateway.mqtt_addr, &good, "btn-1").await;

    let mut oversized = connected(gateway.mqtt_addr, &big, "btn-2").await;
    let publish = Publish::new("d/btn-2/up", QoS::AtMostOnce, vec![7u8; 4096]);
    oversized.send(Packet::Publish(publish)).await.unwrap();
    assert!(
        oversized.closed_within(WAIT).await,
        "an oversized packet was accepted"
    );

    let mut malformed = connected(gateway.mqtt_addr, &junk, "btn-3").await;
    // Packet type 15 is reserved in MQTT 3.1.1.
    malformed.send_raw(&[0xf0, 0x02, 0x00, 0x00]).await.unwrap();
    assert!(
        malformed.closed_within(WAIT).await,
        "a malformed packet was accepted"
    );

    // Packet id 0 is invalid for SUBSCRIBE even on the device's own topic.
    let mut zero_id = connected(gateway.mqtt_addr, &junk, "btn-3").await;
    let subscribe = Subscribe::new("d/btn-3/down", QoS::AtLeastOnce);
    zero_id.send(Packet::Subscribe(subscribe)).await.unwrap();
    assert!(
        zero_id.closed_within(WAIT).await,
        "packet id 0 was accepted"
    );

    device.publish("d/btn-1/up", b"fine").await.unwrap();
    let uplink = tokio::time::timeout(WAIT, gateway.uplinks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(uplink.device_id, id("btn-1"));
    assert!(
        gateway.uplinks.try_recv().is_err(),
        "the refused packets reached the agent"
    );
    gateway.stop().await;
}
