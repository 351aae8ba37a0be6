//! Integrations (strobes, PA, signage) against the real `edge-agent run` process: Debian's
//! `mosquitto_sub` with an integration bundle reads the retained school status and every alert
//! change under `hallwatch/`; devices cannot read there, integrations cannot publish anywhere,
//! and a revoked integration is refused. Also the `integration add|list|revoke` commands.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers;
// a test helper should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::agent::RunningAgent;
use common::button::FwDevice;
use common::device::{RawDevice, connected, tls_config};
use common::net::Killed;
use common::{Gateway, SCHOOL, fails, mode, ok, pem_der, read, s};
use firmware_protocol::{AckState, PressPattern};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    Connect, ConnectReturnCode, LastWill, Packet, PubAck, Publish, Subscribe, SubscribeFilter,
    SubscribeReasonCode,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn room_config() -> &'static str {
    "\n[[rooms]]\nid = \"A-101\"\nbuilding = \"A\"\nfloor = \"1\"\ncapacity = 30\n"
}

/// `integration add` into `tmp/<name>`; returns the bundle directory.
fn add_integration(gw: &Gateway, name: &str) -> PathBuf {
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
    out
}

/// A running `mosquitto_sub` whose stdout lines arrive on a channel.
struct Sub {
    process: Killed,
    lines: mpsc::Receiver<String>,
}

impl Sub {
    /// `mosquitto_sub` with the integration bundle in `bundle`, as its README says, plus
    /// `args`. Fails the test, never skips it, when the program is missing.
    fn start(agent: &RunningAgent, bundle: &Path, args: &[&str]) -> Sub {
        let found = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("mosquitto_sub").is_file())
        });
        assert!(
            found,
            "`mosquitto_sub` is not on PATH: run `cargo xtask test`, which installs Debian's \
             mosquitto-clients (or `apt-get install mosquitto-clients`)"
        );
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(agent.mqtt.port().to_string())
            .args(["--cafile", s(&bundle.join("ca.pem"))])
            .args(["--cert", s(&bundle.join("integration.pem"))])
            .args(["--key", s(&bundle.join("integration.key"))])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Sub {
            process: Killed(child),
            lines,
        }
    }

    /// The next line within `wait`; `None` on timeout or when the program ended.
    async fn line(&self, wait: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match self.lines.try_recv() {
                Ok(line) => return Some(line),
                Err(mpsc::TryRecvError::Disconnected) => return None,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The next line whose words (split at the first `n - 1` spaces) satisfy `matches`.
    async fn wait_for(&self, n: usize, matches: impl Fn(&[&str]) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .line(left)
                .await
                .unwrap_or_else(|| panic!("mosquitto_sub printed no matching line in {WAIT:?}"));
            let words: Vec<&str> = line.splitn(n, ' ').collect();
            if words.len() == n && matches(&words) {
                return words.into_iter().map(str::to_owned).collect();
            }
        }
    }

    /// Waits up to `wait` for the program to exit; its status, if it did.
    async fn exited(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.process.0.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// An integration connected with our own client (to send exactly what a misbehaving one
/// would): the bundle's certificate, any client id.
async fn raw_integration(addr: SocketAddr, bundle: &Path, connect: Connect) -> RawDevice {
    let config = tls_config(
        &bundle.join("ca.pem"),
        Some((
            &bundle.join("integration.pem"),
            &bundle.join("integration.key"),
        )),
    );
    let mut client = RawDevice::tls(addr, config).await.unwrap();
    let ack = client.mqtt_connect_with(connect).await.expect("CONNACK");
    assert_eq!(ack.code, ConnectReturnCode::Success);
    client
}

/// Sends PINGREQ; true when PINGRESP comes (messages before it are acknowledged and skipped).
async fn pinged(client: &mut RawDevice) -> bool {
    client.send(Packet::PingReq).await.unwrap();
    loop {
        match client.recv(WAIT).await {
            Ok(Some(Packet::PingResp)) => return true,
            Ok(Some(Packet::Publish(p))) if p.topic.starts_with("hallwatch/") => {
                if p.qos == QoS::AtLeastOnce {
                    client
                        .send(Packet::PubAck(PubAck::new(p.pkid)))
                        .await
                        .unwrap();
                }
            }
            other => {
                eprintln!("expected PINGRESP, got {other:?}");
                return false;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mosquitto_sub_reads_the_retained_status_and_every_alert_change() {
    let gw = Gateway::init_local();
    let button_bundle = gw.add("btn-1", "button", "A-101");
    let signage = add_integration(&gw, "signage");
    let agent = gw.run_agent(room_config()).await;

    // The README's command line: every topic under hallwatch/, printed as "topic payload".
    let live = Sub::start(&agent, &signage, &["-q", "1", "-t", "hallwatch/#", "-v"]);
    let mut button = FwDevice::connect(agent.mqtt, &button_bundle, "btn-1", 3).await;
    button.heartbeat(3_000).await;
    // The button coming online changes the summary.
    let status = live
        .wait_for(2, |w| {
            w[0] == "hallwatch/status" && json(w[1])["devices_online"] == 1
        })
        .await;
    let status = json(&status[1]);
    assert_eq!(status["school_id"], SCHOOL);
    assert_eq!(status["active_alerts"], 0);
    assert_eq!(status["highest_severity"], Value::Null);

    button.press(PressPattern::Single, 1).await;
    let ack = button.press_ack(WAIT).await.expect("PressAck");
    assert_eq!(ack.state, AckState::Received);
    let alert = live
        .wait_for(2, |w| w[0].starts_with("hallwatch/alerts/"))
        .await;
    let (topic, alert) = (alert[0].clone(), json(&alert[1]));
    let id = alert["id"].as_str().unwrap().to_owned();
    assert_eq!(topic, format!("hallwatch/alerts/{id}"));
    assert_eq!(alert["kind"], "panic");
    assert_eq!(alert["state"], "triggered");
    assert_eq!(alert["severity"], "high");
    assert_eq!(alert["room"], "A-101");
    assert_eq!(alert["building"], "A");
    assert_eq!(alert["device_id"], "btn-1");
    let status = live
        .wait_for(2, |w| {
            w[0] == "hallwatch/status" && json(w[1])["active_alerts"] == 1
        })
        .await;
    let status = json(&status[1]);
    assert_eq!(status["highest_severity"], "high");
    assert_eq!(status["alerts"][0]["id"], id.as_str());
    drop(live);

    // Connecting after the press: both topics arrive at once, with the retain flag set.
    let strobes = add_integration(&gw, "strobes");
    let late = Sub::start(&agent, &strobes, &["-t", "hallwatch/#", "-F", "%r %t %p"]);
    let retained_status = late.wait_for(3, |w| w[1] == "hallwatch/status").await;
    assert_eq!(retained_status[0], "1", "the status is retained");
    assert_eq!(json(&retained_status[2])["active_alerts"], 1);
    let retained_alert = late.wait_for(3, |w| w[1] == topic).await;
    assert_eq!(retained_alert[0], "1", "the alert is retained");
    assert_eq!(json(&retained_alert[2])["state"], "triggered");

    // Later changes arrive live (retain flag clear), to both kinds of subscriber.
    let (code, _) = agent
        .post(
            &format!("/api/v1/alerts/{id}/acknowledge"),
            r#"{"by": "Ms. Rivera"}"#,
        )
        .await;
    assert_eq!(code, 200);
    let changed = late
        .wait_for(3, |w| {
            w[1] == topic && json(w[2])["state"] == "acknowledged"
        })
        .await;
    assert_eq!(changed[0], "0", "a live change is not flagged retained");

    // A third subscriber, to the alerts only, sees the newest state retained and no status.
    let alerts_only = Sub::start(
        &agent,
        &signage,
        &["-t", "hallwatch/alerts/+", "-F", "%r %t %p"],
    );
    let first = alerts_only.wait_for(3, |_| true).await;
    assert_eq!(first[..2], ["1".to_owned(), topic.clone()]);
    assert_eq!(json(&first[2])["state"], "acknowledged");
    assert!(
        alerts_only.line(Duration::from_millis(500)).await.is_none(),
        "nothing else matches hallwatch/alerts/+"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn open_alerts_are_retained_again_after_a_restart() {
    let gw = Gateway::init_local();
    let button_bundle = gw.add("btn-1", "button", "A-101");
    let signage = add_integration(&gw, "signage");
    let mut agent = gw.run_agent(room_config()).await;
    let mut button = FwDevice::connect(agent.mqtt, &button_bundle, "btn-1", 3).await;
    button.press(PressPattern::Double, 1).await;
    button.press_ack(WAIT).await.expect("PressAck");
    let (_, open) = agent.get("/api/v1/alerts?state=open").await;
    let id = open["alerts"][0]["id"].as_str().unwrap().to_owned();
    drop(button);
    let (_, status) = agent.terminate();
    assert!(status.success());

    // The gate's retained store is in memory; the agent re-announces open alerts at start.
    let agent = gw.run_agent(room_config()).await;
    let sub = Sub::start(
        &agent,
        &signage,
        &["-t", "hallwatch/alerts/+", "-F", "%r %t %p"],
    );
    let retained = sub.wait_for(3, |_| true).await;
    assert_eq!(
        retained[..2],
        ["1".to_owned(), format!("hallwatch/alerts/{id}")]
    );
    let alert = json(&retained[2]);
    assert_eq!(
        (alert["kind"].as_str(), alert["state"].as_str()),
        (Some("medical"), Some("triggered"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_cannot_read_integration_topics_and_integrations_cannot_publish() {
    let gw = Gateway::init_local();
    let button_bundle = gw.add("btn-1", "button", "A-101");
    let other_bundle = gw.add("btn-2", "button", "A-101");
    let pa = add_integration(&gw, "pa");
    let agent = gw.run_agent(room_config()).await;
    let mut button = FwDevice::connect(agent.mqtt, &button_bundle, "btn-1", 1).await;
    button.heartbeat(3_000).await;

    // A device certificate subscribing to hallwatch/#: the session ends.
    let mut device = connected(agent.mqtt, &other_bundle, "btn-2").await;
    let mut subscribe = Subscribe::new("hallwatch/#", QoS::AtMostOnce);
    subscribe.pkid = 1;
    device.send(Packet::Subscribe(subscribe)).await.unwrap();
    assert!(
        device.closed_within(WAIT).await,
        "a device subscribed to hallwatch/#"
    );

    // An integration may subscribe under hallwatch/ (QoS 2 is granted as 1), gets QoS 1
    // deliveries with real packet ids, and pings like a device.
    let mut client = raw_integration(agent.mqtt, &pa, Connect::new("any-client-id")).await;
    let mut subscribe = Subscribe::new_many([
        SubscribeFilter::new("hallwatch/status".into(), QoS::ExactlyOnce),
        SubscribeFilter::new("hallwatch/alerts/+".into(), QoS::AtMostOnce),
    ]);
    subscribe.pkid = 7;
    client.send(Packet::Subscribe(subscribe)).await.unwrap();
    match client.recv(WAIT).await {
        Ok(Some(Packet::SubAck(ack))) => assert_eq!(
            (ack.pkid, ack.return_codes),
            (
                7,
                vec![
                    SubscribeReasonCode::Success(QoS::AtLeastOnce),
                    SubscribeReasonCode::Success(QoS::AtMostOnce)
                ]
            )
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    button.heartbeat(2_900).await;
    button.press(PressPattern::Single, 1).await;
    assert_eq!(button.press_ack(WAIT).await.expect("PressAck").press_seq, 1);
    let mut got_status = false;
    let mut got_alert = false;
    while !(got_status && got_alert) {
        match client.recv(WAIT).await {
            Ok(Some(Packet::Publish(p))) if p.topic == "hallwatch/status" => {
                assert_eq!(p.qos, QoS::AtLeastOnce);
                assert_ne!(p.pkid, 0);
                client
                    .send(Packet::PubAck(PubAck::new(p.pkid)))
                    .await
                    .unwrap();
                got_status = true;
            }
            Ok(Some(Packet::Publish(p))) if p.topic.starts_with("hallwatch/alerts/") => {
                assert_eq!(p.qos, QoS::AtMostOnce);
                assert_eq!(
                    json(std::str::from_utf8(&p.payload).unwrap())["room"],
                    "A-101"
                );
                got_alert = true;
            }
            other => panic!("expected a hallwatch/ message, got {other:?}"),
        }
    }
    assert!(pinged(&mut client).await, "no PINGRESP");

    // Publishing anywhere ends an integration's session, even to a device's down topic; so
    // does a subscription outside hallwatch/ and a last will.
    let mut publish = Publish::new("d/btn-1/down", QoS::AtLeastOnce, b"forged".to_vec());
    publish.pkid = 1;
    client.send(Packet::Publish(publish)).await.unwrap();
    assert!(client.closed_within(WAIT).await, "an integration published");
    for filter in ["d/+/down", "#", "+/status"] {
        let mut client = raw_integration(agent.mqtt, &pa, Connect::new("pa")).await;
        let mut subscribe = Subscribe::new(filter, QoS::AtMostOnce);
        subscribe.pkid = 1;
        client.send(Packet::Subscribe(subscribe)).await.unwrap();
        assert!(client.closed_within(WAIT).await, "subscribed to {filter}");
    }
    let mut client = raw_integration(agent.mqtt, &pa, Connect::new("pa")).await;
    client
        .send(Packet::Publish(Publish::new(
            "hallwatch/status",
            QoS::AtMostOnce,
            b"{}".to_vec(),
        )))
        .await
        .unwrap();
    assert!(
        client.closed_within(WAIT).await,
        "an integration published a status"
    );
    let mut connect = Connect::new("pa");
    connect.last_will = Some(LastWill::new(
        "hallwatch/status",
        "x",
        QoS::AtMostOnce,
        false,
    ));
    let mut client = RawDevice::tls(
        agent.mqtt,
        tls_config(
            &pa.join("ca.pem"),
            Some((&pa.join("integration.pem"), &pa.join("integration.key"))),
        ),
    )
    .await
    .unwrap();
    let ack = client.mqtt_connect_with(connect).await.expect("CONNACK");
    assert_eq!(ack.code, ConnectReturnCode::NotAuthorized);

    // And an independent client: mosquitto_pub with the integration bundle fails.
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p"])
        .arg(agent.mqtt.port().to_string())
        .args(["--cafile", s(&pa.join("ca.pem"))])
        .args(["--cert", s(&pa.join("integration.pem"))])
        .args(["--key", s(&pa.join("integration.key"))])
        .args(["-t", "d/btn-1/down", "-q", "1", "-m", "forged"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "mosquitto_pub published as an integration"
    );

    // Nothing forged reached the button: the next downlink it sees is a real PressAck.
    button.press(PressPattern::Single, 2).await;
    let ack = button.press_ack(WAIT).await.expect("PressAck");
    assert_eq!(ack.press_seq, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_integration_is_disconnected_and_refused_at_the_handshake() {
    let gw = Gateway::init_local();
    let pa = add_integration(&gw, "pa");
    let signage = add_integration(&gw, "signage");
    let agent = gw.run_agent("").await;
    let mut client = raw_integration(agent.mqtt, &pa, Connect::new("pa")).await;
    client.subscribe("hallwatch/#").await.unwrap();
    let mut bystander = raw_integration(agent.mqtt, &signage, Connect::new("signage")).await;
    bystander.subscribe("hallwatch/#").await.unwrap();

    let out = ok(&[
        "integration",
        "revoke",
        "--data-dir",
        s(&gw.data),
        "--id",
        "pa",
    ]);
    assert!(out.contains("Revoked integration pa"), "{out}");
    assert!(
        client.closed_within(Duration::from_secs(3)).await,
        "a revoked integration stayed connected"
    );
    // With TLS 1.3 a refused client certificate shows on the first read.
    let config = tls_config(
        &pa.join("ca.pem"),
        Some((&pa.join("integration.pem"), &pa.join("integration.key"))),
    );
    if let Ok(mut again) = RawDevice::tls(agent.mqtt, config).await {
        assert!(
            again.mqtt_connect("pa").await.is_none(),
            "a revoked integration got a CONNACK"
        );
    }
    let mut sub = Sub::start(&agent, &pa, &["-t", "hallwatch/#", "-v"]);
    let status = sub.exited(WAIT).await.expect("mosquitto_sub kept running");
    assert!(!status.success());
    // The other integration is unaffected.
    assert!(
        pinged(&mut bystander).await,
        "the other integration was disconnected"
    );
}

#[test]
fn integration_commands_write_a_bundle_and_refuse_bad_input() {
    let gw = Gateway::init();
    let out = gw.tmp.path().join("signage");
    let printed = ok(&[
        "integration",
        "add",
        "--data-dir",
        s(&gw.data),
        "--id",
        "signage",
        "--out",
        s(&out),
    ]);
    assert!(
        printed.starts_with("Added integration signage"),
        "{printed}"
    );
    assert_eq!(mode(&out.join("integration.key")), 0o600);
    assert_eq!(read(&out.join("ca.pem")), read(&gw.data.join("ca.pem")));
    let readme = read(&out.join("README.txt"));
    assert!(
        readme.contains("mosquitto_sub -h gw.lincoln.local -p 8883 --cafile ca.pem")
            && readme.contains("--cert integration.pem --key integration.key")
            && readme.contains("-t 'hallwatch/#' -v"),
        "{readme}"
    );
    // The certificate: CN = name, O = school, OU = integration, client auth only.
    let der = pem_der(&read(&out.join("integration.pem")));
    let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
    let subject = x509.subject();
    let text = |a: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>| {
        a.unwrap().as_str().unwrap().to_owned()
    };
    assert_eq!(text(subject.iter_common_name().next()), "signage");
    assert_eq!(text(subject.iter_organization().next()), SCHOOL);
    assert_eq!(
        text(subject.iter_organizational_unit().next()),
        "integration"
    );
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);

    // Refusals, each with a clear message and nothing written.
    let bad = gw.tmp.path().join("bad");
    let (code, err) = fails(&[
        "integration",
        "add",
        "--data-dir",
        s(&gw.data),
        "--id",
        "pa/1",
        "--out",
        s(&bad),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid integration id"), "{err}");
    assert!(!bad.exists());
    let again = gw.tmp.path().join("again");
    let (code, err) = fails(&[
        "integration",
        "add",
        "--data-dir",
        s(&gw.data),
        "--id",
        "signage",
        "--out",
        s(&again),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("integration signage already exists"), "{err}");
    assert!(!again.exists(), "a refused add wrote a bundle");
    let (code, err) = fails(&[
        "integration",
        "revoke",
        "--data-dir",
        s(&gw.data),
        "--id",
        "nope",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no integration nope exists"), "{err}");
    assert!(
        !gw.data.join("crl.pem").exists(),
        "a refused revoke wrote a CRL"
    );

    // A device and an integration may share a name; their certificates never share a serial.
    let device = gw.tmp.path().join("signage-device");
    ok(&gw.add_args("signage", "button", "A-101", &device));
    let device_der = pem_der(&read(&device.join("device.pem")));
    let (_, device_x509) = x509_parser::parse_x509_certificate(&device_der).unwrap();
    assert_ne!(device_x509.raw_serial(), x509.raw_serial());
    assert_eq!(device_x509.subject().iter_organizational_unit().count(), 0);

    ok(&[
        "integration",
        "revoke",
        "--data-dir",
        s(&gw.data),
        "--id",
        "signage",
    ]);
    let (code, err) = fails(&[
        "integration",
        "revoke",
        "--data-dir",
        s(&gw.data),
        "--id",
        "signage",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("already revoked"), "{err}");
    let list = ok(&["integration", "list", "--data-dir", s(&gw.data)]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("ID") && lines[0].contains("STATE"));
    assert!(
        lines[1].starts_with("signage") && lines[1].ends_with("revoked"),
        "{list}"
    );
    assert!(
        gw.list().contains("active"),
        "revoking the integration left the device alone"
    );
}
