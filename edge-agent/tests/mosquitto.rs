//! The device gate against an independent MQTT client: Debian's `mosquitto_sub` and
//! `mosquitto_pub` (package `mosquitto-clients`, which `cargo xtask test` installs) with a
//! device's provisioning bundle, so the gate is not only ever tested by our own client code.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers;
// a test helper should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Gateway, s};
use firmware_protocol::{
    AckState, ButtonPress, Downlink, Frame, PressAck, PressPattern, Uplink, decode_uplink,
    encode_downlink, encode_uplink,
};
use shared::ids::DeviceId;

const WAIT: Duration = Duration::from_secs(10);

/// `program` (`mosquitto_pub` or `mosquitto_sub`) connecting to the gateway as the device whose
/// bundle is in `bundle`, with client id `client_id`. Fails the test, never skips it, when the
/// program is missing.
fn mosquitto(
    program: &str,
    gateway: &edge_agent::Gateway,
    bundle: &Path,
    client_id: &str,
) -> Command {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    assert!(
        found,
        "`{program}` is not on PATH: run `cargo xtask test`, which installs Debian's \
         mosquitto-clients (or `apt-get install mosquitto-clients`)"
    );
    let mut cmd = Command::new(program);
    cmd.args(["-h", "127.0.0.1", "-p"])
        .arg(gateway.mqtt_addr.port().to_string())
        .args(["--cafile", s(&bundle.join("ca.pem"))])
        .args(["--cert", s(&bundle.join("device.pem"))])
        .args(["--key", s(&bundle.join("device.key"))])
        .args(["-i", client_id]);
    cmd
}

/// Runs a `mosquitto_pub` to completion off the runtime's worker threads.
async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn id(s: &str) -> DeviceId {
    s.parse().unwrap()
}

fn press_frame(press_seq: u32) -> Vec<u8> {
    let frame = Frame::new(
        7,
        press_seq + 100,
        Uplink::ButtonPress(ButtonPress {
            pattern: PressPattern::Double,
            press_seq,
        }),
    );
    let mut buf = [0u8; 256];
    encode_uplink(&frame, &mut buf).unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn mosquitto_sub_receives_a_downlink_through_the_gate() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let gateway = gw.start().await;

    let mut sub = mosquitto("mosquitto_sub", &gateway, &bundle, "btn-1")
        .args([
            "-t",
            "d/btn-1/down",
            "-q",
            "1",
            "-C",
            "1",
            "-W",
            "10",
            "-F",
            "%t %x",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while gateway.gate.connected_devices() != 1 {
        assert!(Instant::now() < deadline, "mosquitto_sub never connected");
        assert!(
            sub.try_wait().unwrap().is_none(),
            "mosquitto_sub exited early"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let ack = Frame::new(
        1,
        1,
        Downlink::PressAck(PressAck {
            press_boot: 7,
            press_seq: 3,
            state: AckState::Received,
        }),
    );
    let mut buf = [0u8; 256];
    let bytes = encode_downlink(&ack, &mut buf).unwrap().to_vec();
    // Connected is past CONNECT, not past SUBSCRIBE: repeat the downlink until the subscriber
    // has one (`-C 1` makes it exit after the first message).
    let status = loop {
        if let Some(status) = sub.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "mosquitto_sub received nothing");
        gateway
            .downlinks
            .send(id("btn-1"), bytes.clone().into())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = sub.wait_with_output().unwrap();
    assert!(
        status.success(),
        "mosquitto_sub failed ({status}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        printed.trim_end(),
        format!("d/btn-1/down {}", hex::encode(&bytes))
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mosquitto_pub_frames_reach_the_agent_with_the_device_id() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let mut gateway = gw.start().await;

    // A binary frame from a file, as firmware would send it.
    let frame = press_frame(1);
    let file = gw.tmp.path().join("press.bin");
    std::fs::write(&file, &frame).unwrap();
    let mut publish = mosquitto("mosquitto_pub", &gateway, &bundle, "btn-1");
    publish.args(["-t", "d/btn-1/up", "-q", "1", "-f", s(&file)]);
    let out = run(publish).await;
    assert!(
        out.status.success(),
        "mosquitto_pub failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let uplink = tokio::time::timeout(WAIT, gateway.uplinks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(uplink.device_id, id("btn-1"));
    assert_eq!(&uplink.payload[..], &frame[..]);
    let decoded = decode_uplink(&uplink.payload).unwrap();
    assert_eq!(decoded.boot, 7);
    assert_eq!(decoded.seq, 101);

    // A text payload with `-m` arrives byte for byte too (the agent decodes, not the gate).
    let mut publish = mosquitto("mosquitto_pub", &gateway, &bundle, "btn-1");
    publish.args(["-t", "d/btn-1/up", "-q", "1", "-m", "hello gate"]);
    assert!(run(publish).await.status.success());
    let uplink = tokio::time::timeout(WAIT, gateway.uplinks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(uplink.device_id, id("btn-1"));
    assert_eq!(&uplink.payload[..], b"hello gate");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mosquitto_pub_cannot_publish_as_another_device() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let _other = gw.add("btn-2", "button", "A-102");
    let mut gateway = gw.start().await;

    // btn-1's certificate and client id, btn-2's topic.
    let mut publish = mosquitto("mosquitto_pub", &gateway, &bundle, "btn-1");
    publish.args(["-t", "d/btn-2/up", "-q", "1", "-m", "forged"]);
    let forged = run(publish).await;
    // The gate closes the connection instead of acknowledging the publish.
    assert!(
        !forged.status.success(),
        "mosquitto_pub published to another device's topic"
    );
    // And btn-1's certificate under btn-2's client id, on btn-2's topic.
    let mut publish = mosquitto("mosquitto_pub", &gateway, &bundle, "btn-2");
    publish.args(["-t", "d/btn-2/up", "-q", "1", "-m", "forged too"]);
    let impostor = run(publish).await;
    assert!(
        !impostor.status.success(),
        "mosquitto_pub connected with another device's client id"
    );

    // Whatever mosquitto_pub reported, nothing forged reached the agent: the next uplink is a
    // legitimate one sent afterwards.
    let mut publish = mosquitto("mosquitto_pub", &gateway, &bundle, "btn-1");
    publish.args(["-t", "d/btn-1/up", "-q", "1", "-m", "genuine"]);
    assert!(run(publish).await.status.success());
    let uplink = tokio::time::timeout(WAIT, gateway.uplinks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(uplink.device_id, id("btn-1"));
    assert_eq!(&uplink.payload[..], b"genuine");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        gateway.uplinks.try_recv().is_err(),
        "a forged message reached the agent"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mosquitto_pub_set_to_another_mqtt_version_is_told_it_is_unacceptable() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let mut gateway = gw.start().await;
    // As a device whose firmware was set to MQTT 5 or 3.1: the gate answers CONNACK code 1
    // (unacceptable protocol version), which each client reports in its own words.
    for (version, told) in [
        ("mqttv5", "unsupported protocol version"),
        ("mqttv31", "unacceptable protocol version"),
    ] {
        let mut publish = mosquitto("mosquitto_pub", &gateway, &bundle, "btn-1");
        publish.args(["-V", version, "-t", "d/btn-1/up", "-q", "1", "-m", "x"]);
        let refused = run(publish).await;
        let stderr = String::from_utf8_lossy(&refused.stderr).to_lowercase();
        assert!(!refused.status.success(), "{version}: published");
        assert!(stderr.contains(told), "{version}: {stderr}");
    }
    assert!(gateway.uplinks.try_recv().is_err());
    // The same client speaking MQTT 3.1.1 gets in.
    let mut publish = mosquitto("mosquitto_pub", &gateway, &bundle, "btn-1");
    publish.args(["-V", "mqttv311", "-t", "d/btn-1/up", "-q", "1", "-m", "x"]);
    assert!(run(publish).await.status.success());
    gateway.stop().await;
}
