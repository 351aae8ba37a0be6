//! `edge-agent simulate`, the real binary, against an in-process gateway: its devices connect
//! with their own certificates, speak firmware-protocol frames, retransmit presses unchanged
//! and count the `PressAck`s this test sends back; bad flags are refused before anything is
//! touched.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers;
// a test helper should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use common::{Gateway, s};
use firmware_protocol::{
    AckState, Downlink, Frame, PressAck, Uplink, decode_uplink, encode_downlink,
};

fn simulate(gw: &Gateway, gateway: &edge_agent::Gateway, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge-agent"));
    cmd.args(["simulate", "--data-dir", s(&gw.data)])
        .args(["--host", "127.0.0.1", "--port"])
        .arg(gateway.mqtt_addr.port().to_string())
        .args(args)
        .env_remove("RUST_LOG");
    cmd
}

/// The number before `label` in the simulator's last line, e.g. `acks received 12`.
fn count(out: &str, label: &str) -> u64 {
    let last = out.lines().last().unwrap();
    assert!(last.starts_with("done after"), "no final summary: {out}");
    let (_, after) = last.split_once(label).unwrap();
    after
        .split([',', ' ', ')'])
        .find(|w| !w.is_empty())
        .unwrap()
        .parse()
        .unwrap()
}

#[derive(Debug, Default)]
struct Seen {
    heartbeats: BTreeSet<String>,
    occupancy: BTreeSet<String>,
    presses: BTreeSet<String>,
    /// (device, press_seq) → every (boot, seq) that carried it.
    press_frames: BTreeMap<(String, u32), BTreeSet<(u32, u32)>>,
    press_sends: usize,
    /// (device, press_seq) → how many times it was sent.
    sends: BTreeMap<(String, u32), u32>,
}

#[tokio::test(flavor = "multi_thread")]
async fn simulated_devices_send_real_frames_and_count_press_acks() {
    let gw = Gateway::init_local();
    let mut gateway = gw.start().await;
    // A press is acknowledged here only once retransmitted, a second later. At 2 presses/s, a
    // 5 s run has no press in its first 4 s with probability e^-8 (0.03 %).
    let mut cmd = simulate(
        &gw,
        &gateway,
        &[
            "--buttons",
            "3",
            "--cameras",
            "2",
            "--press-rate",
            "2",
            "--duration",
            "5",
        ],
    );
    let mut run = tokio::task::spawn_blocking(move || cmd.output().unwrap());

    let mut seen = Seen::default();
    let mut acks_sent = 0;
    let output: Output = loop {
        tokio::select! {
            out = &mut run => break out.unwrap(),
            Some(uplink) = gateway.uplinks.recv() => {
                let device = uplink.device_id.to_string();
                let frame = decode_uplink(&uplink.payload)
                    .unwrap_or_else(|e| panic!("{device} sent an undecodable frame: {e}"));
                match frame.body {
                    Uplink::Heartbeat(_) => {
                        seen.heartbeats.insert(device);
                    }
                    Uplink::Occupancy(o) => {
                        assert!(o.students <= 30 && o.adults <= 3, "{o:?}");
                        assert!((70..=99).contains(&o.confidence_pct), "{o:?}");
                        seen.occupancy.insert(device);
                    }
                    Uplink::ButtonPress(press) => {
                        seen.press_sends += 1;
                        let key = (device.clone(), press.press_seq);
                        *seen.sends.entry(key.clone()).or_default() += 1;
                        seen.press_frames.entry(key.clone()).or_default().insert((frame.boot, frame.seq));
                        seen.presses.insert(device);
                        // The first send of each press goes unanswered, as if the ack were
                        // lost, so every acknowledged press has been retransmitted.
                        if seen.sends[&key] == 1 {
                            continue;
                        }
                        let ack = Frame::new(1, acks_sent + 1, Downlink::PressAck(PressAck {
                            press_boot: frame.boot,
                            press_seq: press.press_seq,
                            state: AckState::Received,
                        }));
                        let mut buf = [0u8; 64];
                        let bytes = encode_downlink(&ack, &mut buf).unwrap().to_vec();
                        gateway.downlinks.send(uplink.device_id, bytes.into()).unwrap();
                        acks_sent += 1;
                    }
                    Uplink::CancelRequest(_) => panic!("{device} cancelled a press"),
                }
            }
        }
    };
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "simulate failed ({}): {}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{stdout}");

    let set = |ids: &[&str]| ids.iter().map(ToString::to_string).collect::<BTreeSet<_>>();
    let buttons = set(&["sim-btn-0001", "sim-btn-0002", "sim-btn-0003"]);
    let cameras = set(&["sim-cam-0001", "sim-cam-0002"]);
    let all: BTreeSet<String> = buttons.union(&cameras).cloned().collect();
    assert_eq!(seen.heartbeats, all, "heartbeats");
    assert_eq!(seen.occupancy, cameras, "occupancy comes from cameras only");
    assert!(!seen.presses.is_empty(), "no press in 5 s at 2 presses/s");
    assert!(
        seen.presses.is_subset(&buttons),
        "presses: {:?}",
        seen.presses
    );
    for ((device, press_seq), frames) in &seen.press_frames {
        assert_eq!(
            frames.len(),
            1,
            "{device} press {press_seq} was retransmitted with other (boot, seq): {frames:?}"
        );
    }
    println!(
        "{} presses in {} sends, {acks_sent} acks sent",
        seen.press_frames.len(),
        seen.press_sends
    );
    for ((device, press_seq), sends) in &seen.sends {
        // Answered from the second send on; the next retry is a second later.
        assert!(
            *sends <= 3,
            "{device} press {press_seq} sent {sends} times despite its ack"
        );
    }
    assert!(
        seen.press_sends > seen.press_frames.len(),
        "no press was retransmitted"
    );
    assert!(count(&stdout, "retransmits") > 0, "{stdout}");
    assert!(count(&stdout, "acks received") > 0, "{stdout}");
    assert_eq!(count(&stdout, "given up"), 0, "{stdout}");

    // A second run reuses the registered devices and their bundles.
    let mut again = simulate(&gw, &gateway, &["--cameras", "2", "--duration", "1"]);
    let out = tokio::task::spawn_blocking(move || again.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("(0 provisioned now, 2 reused;"), "{stdout}");
    let list = gw.list();
    assert_eq!(list.matches("sim-").count(), 5, "{list}");
    while gateway.uplinks.try_recv().is_ok() {}
    gateway.stop().await;
}

#[test]
fn bad_flags_are_refused_before_anything_is_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("gw");
    let cases: [(&[&str], &str); 6] = [
        (&["--buttons", "0", "--cameras", "0"], "nothing to simulate"),
        (
            &["--buttons", "1", "--press-rate", "-1"],
            "--press-rate -1 is out of range",
        ),
        (
            &["--buttons", "1", "--press-rate", "1001"],
            "--press-rate 1001 is out of range",
        ),
        (
            &["--buttons", "5001"],
            "--buttons 5001 is too many (at most 5000)",
        ),
        (
            &["--cameras", "5001"],
            "--cameras 5001 is too many (at most 5000)",
        ),
        (
            &["--buttons", "1", "--press-retry-limit", "0"],
            "--press-retry-limit must be",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["simulate", "--data-dir", s(&data)];
        all.extend_from_slice(args);
        let (code, stderr) = common::fails(&all);
        assert_eq!(code, 64, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!data.exists(), "{args:?} touched the data directory");
    }
    // Flags fine, but no gateway there.
    let (code, stderr) = common::fails(&["simulate", "--data-dir", s(&data), "--buttons", "1"]);
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("agent.toml"), "{stderr}");
}

/// `edge-agent simulate` against the real `edge-agent run`: every press is answered by the
/// engine, and the front office's API shows the alerts, the cameras' counts and the devices.
#[tokio::test(flavor = "multi_thread")]
async fn simulate_against_the_running_agent_shows_alerts_counts_and_health() {
    let gw = Gateway::init_local();
    let agent = gw.run_agent("").await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge-agent"));
    cmd.args(["simulate", "--data-dir", s(&gw.data)])
        .args(["--host", "127.0.0.1", "--port"])
        .arg(agent.mqtt.port().to_string())
        .args([
            "--buttons",
            "3",
            "--cameras",
            "2",
            "--press-rate",
            "3",
            "--duration",
            "4",
        ])
        .env_remove("RUST_LOG");
    let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let presses = count(&out, "presses");
    assert!(presses > 0, "the simulator pressed: {out}");
    // A press sent in the run's last milliseconds may still be waiting when it stops.
    let pending = count(&out, "pending ack");
    assert!(pending <= 1, "every press answered: {out}");
    assert_eq!(count(&out, "given up"), 0, "{out}");
    assert!(count(&out, "acks received") >= presses - pending, "{out}");

    // The simulator's devices: each button's presses joined its one open alert.
    let (_, alerts) = agent.get("/api/v1/alerts?state=open").await;
    let alerts = alerts["alerts"].as_array().unwrap();
    assert!(!alerts.is_empty() && alerts.len() <= 3, "{alerts:?}");
    let pressed: u64 = alerts
        .iter()
        .map(|a| a["press_count"].as_u64().unwrap())
        .sum();
    // The unanswered one, if any, may never have left the simulator.
    assert!(
        (presses - pending..=presses).contains(&pressed),
        "every distinct press is counted in an alert: {pressed} of {presses} ({pending} pending)"
    );
    let (_, devices) = agent.get("/api/v1/devices").await;
    let online = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "online")
        .count();
    assert_eq!(online, 5, "{devices}");
    let (status, snapshot) = agent.get("/api/v1/snapshot").await;
    assert_eq!(status, 200);
    assert!(
        snapshot["students_present"].as_u64().unwrap() > 0,
        "{snapshot}"
    );
    assert_eq!(snapshot["devices_online"], 5, "{snapshot}");
}
