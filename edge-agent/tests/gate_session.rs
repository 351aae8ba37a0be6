//! The gate as the devices' MQTT server: keep-alive, last will, what it refuses (QoS 2) and
//! that downlinks reach only a device subscribed to its `down` topic.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers;
// a test helper should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::Gateway;
use common::device::connected_with;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, LastWill, Packet, Publish, Unsubscribe};
use shared::ids::DeviceId;

const WAIT: Duration = Duration::from_secs(3);

/// A CONNECT for `id` with a last will on its own up topic.
fn with_will(id: &str, will: &[u8]) -> Connect {
    let mut connect = Connect::new(id);
    let topic = format!("d/{id}/up");
    connect.last_will = Some(LastWill::new(topic, will.to_vec(), QoS::AtLeastOnce, false));
    connect
}

fn id(s: &str) -> DeviceId {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_silent_device_is_closed_after_one_and_a_half_keep_alives() {
    let gw = Gateway::init_local();
    let silent = gw.add("btn-1", "button", "A-101");
    let pinging = gw.add("btn-2", "button", "A-102");
    let gateway = gw.start().await;
    let mut connect = Connect::new("btn-1");
    connect.keep_alive = 1;
    let connected_at = Instant::now();
    let mut quiet = connected_with(gateway.mqtt_addr, &silent, connect).await;
    let mut connect = Connect::new("btn-2");
    connect.keep_alive = 1;
    let mut alive = connected_with(gateway.mqtt_addr, &pinging, connect).await;

    // btn-2 pings every half second and stays; btn-1 says nothing and is closed at 1.5 s.
    let mut pings = 0;
    while connected_at.elapsed() < Duration::from_millis(1_300) {
        alive.send(Packet::PingReq).await.unwrap();
        assert!(matches!(alive.recv(WAIT).await, Ok(Some(Packet::PingResp))));
        pings += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(pings >= 2);
    assert!(quiet.closed_within(WAIT).await, "a silent device was kept");
    let closed_after = connected_at.elapsed();
    assert!(
        closed_after >= Duration::from_millis(1_400),
        "closed after {closed_after:?}, before 1.5 × its keep-alive"
    );
    for _ in 0..4 {
        alive.send(Packet::PingReq).await.unwrap();
        assert!(matches!(alive.recv(WAIT).await, Ok(Some(Packet::PingResp))));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(gateway.gate.connected_devices(), 1);
    gateway.stop().await;
}

#[tokio::test]
async fn the_last_will_reaches_the_agent_on_an_abnormal_close_only() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let mut gateway = gw.start().await;

    // Closed after DISCONNECT: no will.
    let mut device = connected_with(gateway.mqtt_addr, &bundle, with_will("btn-1", b"clean")).await;
    device.send(Packet::Disconnect).await.unwrap();
    assert!(device.closed_within(WAIT).await);
    drop(device);

    // The TCP connection dropped without DISCONNECT: the will is published.
    let device = connected_with(gateway.mqtt_addr, &bundle, with_will("btn-1", b"lost")).await;
    drop(device);
    let uplink = tokio::time::timeout(WAIT, gateway.uplinks.recv())
        .await
        .expect("the will of a vanished device")
        .unwrap();
    assert_eq!(uplink.device_id, id("btn-1"));
    assert!(uplink.last_will, "a will is marked as one");
    assert_eq!(
        &uplink.payload[..],
        b"lost",
        "the will after DISCONNECT was published"
    );

    // Closed by the gate for a violation: the will is published too.
    let mut device = connected_with(gateway.mqtt_addr, &bundle, with_will("btn-1", b"bad")).await;
    let publish = Publish::new("d/btn-2/up", QoS::AtMostOnce, b"x".to_vec());
    device.send(Packet::Publish(publish)).await.unwrap();
    assert!(device.closed_within(WAIT).await);
    let uplink = tokio::time::timeout(WAIT, gateway.uplinks.recv())
        .await
        .expect("the will of a device closed for a violation")
        .unwrap();
    assert_eq!(&uplink.payload[..], b"bad");
    assert!(uplink.last_will);

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(gateway.uplinks.try_recv().is_err(), "an unexpected uplink");
    gateway.stop().await;
}

#[tokio::test]
async fn a_qos_2_publish_is_refused() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let mut gateway = gw.start().await;
    let mut device = connected_with(gateway.mqtt_addr, &bundle, Connect::new("btn-1")).await;
    let mut publish = Publish::new("d/btn-1/up", QoS::ExactlyOnce, b"twice".to_vec());
    publish.pkid = 1;
    device.send(Packet::Publish(publish)).await.unwrap();
    assert!(
        device.closed_within(WAIT).await,
        "a QoS 2 publish was accepted"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        gateway.uplinks.try_recv().is_err(),
        "the QoS 2 publish reached the agent"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn downlinks_reach_a_device_only_while_it_is_subscribed() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let gateway = gw.start().await;
    let mut device = connected_with(gateway.mqtt_addr, &bundle, Connect::new("btn-1")).await;
    let send = |frame: &'static [u8]| {
        gateway
            .downlinks
            .send(id("btn-1"), frame.to_vec().into())
            .unwrap();
    };

    send(b"before");
    assert!(
        device
            .recv(Duration::from_millis(500))
            .await
            .unwrap()
            .is_none(),
        "a downlink reached a device that had not subscribed"
    );

    device.subscribe("d/btn-1/down").await.unwrap();
    send(b"during");
    match device.recv(WAIT).await.unwrap() {
        Some(Packet::Publish(p)) => {
            assert_eq!(p.topic, "d/btn-1/down");
            assert_eq!(p.qos, QoS::AtMostOnce);
            assert_eq!(&p.payload[..], b"during");
        }
        other => panic!("expected the downlink, got {other:?}"),
    }

    let mut unsubscribe = Unsubscribe::new("d/btn-1/down");
    unsubscribe.pkid = 2;
    device.send(Packet::Unsubscribe(unsubscribe)).await.unwrap();
    assert!(matches!(
        device.recv(WAIT).await.unwrap(),
        Some(Packet::UnsubAck(_))
    ));
    send(b"after");
    assert!(
        device
            .recv(Duration::from_millis(500))
            .await
            .unwrap()
            .is_none(),
        "a downlink reached a device that had unsubscribed"
    );
    gateway.stop().await;
}
