//! What an installer reads when a device cannot connect: the real `edge-agent run` process
//! logs every TLS handshake it refuses at warn, with the reason (unknown CA, expired, not yet
//! valid, revoked, no client certificate), and an MQTT 5 CONNECT at warn with its CONNACK code.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers;
// a test helper should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Gateway;
use common::device::{RawDevice, bundle_tls, connected, tls_config};
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

/// A `refused a TLS handshake` line at warn whose reason contains `reason`.
fn handshake_refused(line: &Value, reason: &str) -> bool {
    line["level"] == "WARN"
        && line["fields"]["message"] == "refused a TLS handshake"
        && line["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(reason))
}

#[tokio::test]
async fn each_refused_handshake_is_logged_at_warn_with_its_reason() {
    let gw = Gateway::init_local();
    let good = gw.add("btn-1", "button", "A-101");
    let revoked = gw.add("btn-2", "button", "A-102");
    gw.revoke("btn-2");
    let other = Gateway::init_local();
    let foreign = other.add("btn-1", "button", "A-101");
    let expired = common::expired_device_cert(&gw, "btn-3");
    let future = common::future_device_cert(&gw, "btn-4");
    let agent = gw.run_agent("").await;

    let ca = good.join("ca.pem");
    let cases = [
        ("no client certificate", tls_config(&ca, None)),
        (
            "unknown CA",
            tls_config(
                &ca,
                Some((&foreign.join("device.pem"), &foreign.join("device.key"))),
            ),
        ),
        (
            "certificate expired",
            tls_config(&ca, Some((&expired.0, &expired.1))),
        ),
        (
            "certificate not yet valid",
            tls_config(&ca, Some((&future.0, &future.1))),
        ),
        ("certificate revoked", bundle_tls(&revoked)),
    ];
    for (reason, config) in cases {
        // With TLS 1.3 the client finishes its side first; the refusal shows on its next read.
        if let Ok(mut device) = RawDevice::tls(agent.mqtt, config).await {
            assert!(
                device.mqtt_connect("btn-1").await.is_none(),
                "{reason}: let in"
            );
        }
        let line = agent.log_line(WAIT, |l| handshake_refused(l, reason)).await;
        assert!(
            line["fields"]["detail"].is_string() && line["span"]["peer"].is_string(),
            "{line}"
        );
    }

    // A client that closes without a word (a port scan) is no news for the installer: its end
    // is logged at debug only.
    let scan = tokio::net::TcpStream::connect(agent.mqtt).await.unwrap();
    let peer = scan.local_addr().unwrap().to_string();
    drop(scan);
    agent
        .log_line(WAIT, |l| {
            l["span"]["peer"] == peer.as_str()
                && l["fields"]["message"] == "device connection ended"
        })
        .await;
    let warned = agent
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["level"] == "WARN" && l["span"]["peer"] == peer.as_str())
        .count();
    assert_eq!(warned, 0, "{}", agent.log());
    let _device = connected(agent.mqtt, &good, "btn-1").await;
}

#[tokio::test]
async fn an_mqtt_5_connect_is_answered_with_code_1_and_logged() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let agent = gw.run_agent("").await;
    let mut device = RawDevice::tls(agent.mqtt, bundle_tls(&bundle))
        .await
        .unwrap();
    // rumqttc's v4 codec writes level 5 with a 3.1.1 layout; the level alone decides.
    let mut connect = Connect::new("btn-1");
    connect.protocol = rumqttc::mqttbytes::Protocol::V5;
    device.send(Packet::Connect(connect)).await.unwrap();
    match device.recv(WAIT).await {
        Ok(Some(Packet::ConnAck(ack))) => {
            assert_eq!(ack.code, ConnectReturnCode::RefusedProtocolVersion);
        }
        other => panic!("expected CONNACK 1, got {other:?}"),
    }
    assert!(device.closed_within(WAIT).await);
    let line = agent
        .log_line(WAIT, |l| {
            l["level"] == "WARN" && l["fields"]["message"] == "refused CONNECT"
        })
        .await;
    let reason = line["fields"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("MQTT 5") && reason.contains("MQTT-3.1.2-2"),
        "{line}"
    );
    assert_eq!(line["fields"]["client"], "device btn-1", "{line}");
}
