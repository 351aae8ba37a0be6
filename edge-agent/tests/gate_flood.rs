//! The gate under a flood of useless connections, against the real `edge-agent run` process:
//! 500 idle or stalled TCP connections must not delay a real device, must be timed out, must be
//! capped, and must not grow the agent's open file count without bound.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers;
// a test helper should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Gateway;
use common::device::{RawDevice, bundle_tls};
use common::net::{Killed, free_port, wait_listening};
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const ATTACKERS: usize = 500;
/// Source addresses the flood comes from (127.0.0.2 ..); the device uses 127.0.0.1.
const SOURCES: u8 = 10;

/// `edge-agent run`, killed on drop.
struct Agent(Killed);

impl Agent {
    fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.0.0.id()))
            .unwrap()
            .count()
    }
}

async fn run_agent(gw: &Gateway, port: u16) -> Agent {
    let config_path = gw.data.join("agent.toml");
    let config = common::read(&config_path)
        .replace(
            "listen = \"0.0.0.0:8883\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace("listen = \"0.0.0.0:8080\"", "listen = \"127.0.0.1:0\"")
        .replace("handshake_timeout_ms = 5000", "handshake_timeout_ms = 1000")
        .replace("connect_timeout_ms = 5000", "connect_timeout_ms = 1000");
    std::fs::write(&config_path, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["run", "--data-dir", common::s(&gw.data)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent = Agent(Killed(child));
    wait_listening((Ipv4Addr::LOCALHOST, port).into()).await;
    // Let the probe connection above be closed and counted out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_stalled_connections_neither_delay_devices_nor_pile_up() {
    let gw = Gateway::init_local();
    let bundle = gw.add("btn-1", "button", "A-101");
    let port = free_port();
    let agent = run_agent(&gw, port).await;
    let gate: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    let baseline = agent.open_files();

    let mut flood = Vec::with_capacity(ATTACKERS);
    for n in 0..ATTACKERS {
        let source = Ipv4Addr::new(127, 0, 0, 2 + (n % usize::from(SOURCES)) as u8);
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind((source, 0).into()).unwrap();
        let mut stream = socket.connect(gate).await.unwrap();
        if n % 2 == 0 {
            // One byte of a TLS record header, then nothing.
            let _ = stream.write_all(&[0x16]).await;
        }
        flood.push(stream);
    }

    let started = Instant::now();
    let mut device = RawDevice::tls(gate, bundle_tls(&bundle)).await.unwrap();
    let ack = device.mqtt_connect("btn-1").await.expect("CONNACK");
    let connect_time = started.elapsed();
    assert_eq!(ack.code, ConnectReturnCode::Success);
    assert!(
        connect_time < Duration::from_secs(1),
        "device connect took {connect_time:?}"
    );

    // At most max_pending_per_ip (32) connections per source are held, the rest closed at once.
    let held = agent.open_files().saturating_sub(baseline);
    assert!(
        held <= 32 * usize::from(SOURCES) + 10,
        "{held} more files open under the flood"
    );
    println!("files held under the flood: {held} above a baseline of {baseline}");

    // After the handshake timeout (1 s here) every flood connection is closed by the gate,
    // although the clients keep their ends open.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let held = agent.open_files().saturating_sub(baseline);
    assert!(
        held <= 10,
        "{held} more files still open after the handshake timeout"
    );
    let mut closed = 0;
    for stream in &mut flood {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            closed += 1;
        }
    }
    assert_eq!(closed, ATTACKERS, "some flood connections are still open");

    // The device's session survived all of it.
    device.send(Packet::PingReq).await.unwrap();
    assert!(matches!(
        device.recv(Duration::from_secs(2)).await,
        Ok(Some(Packet::PingResp))
    ));
    println!("device connected in {connect_time:?} under a {ATTACKERS}-connection flood");
}
