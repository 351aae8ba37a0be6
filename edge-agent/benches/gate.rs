//! `cargo xtask bench gate`: the device gate and broker under load, release build.
//!
//! Figures: mTLS connections per second (TLS + CONNECT + CONNACK), QoS 1 uplink throughput of
//! 64-byte frames from 100 connections to the agent's consumer, the same load against a plain
//! Debian Mosquitto broker (TLS, client certificates) as the reference, and the resident memory
//! of a real `edge-agent run` process holding 1,000 device connections. The load generator runs
//! in this process on the same 2 cores, so every figure includes its cost too.

// A benchmark should stop loudly on any setup failure.
#![allow(clippy::unwrap_used)]

// The tests' raw device; the benchmark uses only part of it.
#[path = "../tests/common/device.rs"]
#[allow(dead_code)]
mod device;
#[path = "../tests/common/net.rs"]
mod net;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use device::{RawDevice, bundle_tls};
use edge_agent::config::Config;
use edge_agent::install::{InitOptions, add_device, init};
use edge_agent::store::{DeviceKind, NewDevice};
use net::{Killed, free_port, wait_listening};
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet, Publish, Subscribe};
use rumqttc::mqttbytes::{self, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

const DEVICES: usize = 1_000;
const HANDSHAKES: usize = 2_000;
const HANDSHAKE_WORKERS: usize = 16;
const PUBLISHERS: usize = 100;
const PER_PUBLISHER: usize = 5_000;
const WINDOW: usize = 50;
const FRAME: [u8; 64] = [0x5a; 64];

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("gw");
    let bundles = provision(&data, tmp.path());
    let tls: Vec<_> = bundles.iter().map(|b| bundle_tls(b)).collect();
    let ids: Vec<String> = (0..DEVICES).map(device_id).collect();

    let mut config = Config::load(&data).unwrap();
    config.mqtt_listen = "127.0.0.1:0".parse().unwrap();
    let gateway = edge_agent::Gateway::start(&config, &data).await.unwrap();
    let rate = handshakes(gateway.mqtt_addr, &tls, &ids).await;
    println!("figure gate_mtls_connections_per_s {rate:.0} conn/s");
    let (ours, lost) = gateway_throughput(gateway, &tls, &ids).await;
    println!("figure gate_qos1_uplinks_per_s {ours:.0} msg/s");
    println!("figure gate_qos1_uplinks_lost {lost} msgs");

    // What the gate and broker carry with the rate limits lifted (the defaults hold the
    // total at 100,000/s so that rumqttd's uplink log never overflows).
    config.gate.device_uplinks_per_s = 1_000_000;
    config.gate.total_uplinks_per_s = 1_000_000;
    let gateway = edge_agent::Gateway::start(&config, &data).await.unwrap();
    let (capacity, lost) = gateway_throughput(gateway, &tls, &ids).await;
    println!("figure gate_unlimited_uplinks_per_s {capacity:.0} msg/s");
    println!("figure gate_unlimited_uplinks_lost {lost} msgs");

    match mosquitto_reference(&data, &tls, &ids).await {
        Some(reference) => {
            println!("figure mosquitto_qos1_uplinks_per_s {reference:.0} msg/s");
            println!("figure gate_to_mosquitto_ratio {:.2} x", ours / reference);
        }
        None => eprintln!("mosquitto is not installed; no reference figure"),
    }

    let (idle, loaded) = resident_memory(&data, &tls, &ids).await;
    println!("figure agent_rss_idle {idle:.1} MB");
    println!("figure agent_rss_1000_devices {loaded:.1} MB");
}

/// Throughput to the agent's consumer of a started gateway, which is stopped afterwards.
async fn gateway_throughput(
    mut gateway: edge_agent::Gateway,
    tls: &[Arc<rustls::ClientConfig>],
    ids: &[String],
) -> (f64, usize) {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    let mut uplinks = std::mem::replace(&mut gateway.uplinks, tokio::sync::mpsc::channel(1).1);
    let consumer = tokio::spawn(async move {
        while uplinks.recv().await.is_some() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let result = throughput(gateway.mqtt_addr, tls, ids, &received).await;
    consumer.abort();
    gateway.stop().await;
    result
}

fn device_id(n: usize) -> String {
    format!("bench-{n:04}")
}

/// An initialised gateway with `DEVICES` buttons; returns their bundle directories.
fn provision(data: &Path, tmp: &Path) -> Vec<PathBuf> {
    init(InitOptions {
        data_dir: data.to_owned(),
        school_id: "bench-school".parse().unwrap(),
        school_name: "Bench School".into(),
        hostnames: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
        mqtt_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
    })
    .unwrap();
    (0..DEVICES)
        .map(|n| {
            let out = tmp.join(device_id(n));
            let device = NewDevice {
                id: device_id(n).parse().unwrap(),
                kind: DeviceKind::Button,
                room: firmware_protocol::Label::new("R-1").unwrap(),
                press_map: None,
            };
            add_device(data, &device, &out).unwrap();
            out
        })
        .collect()
}

async fn connect(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>, id: &str) -> RawDevice {
    let mut device = RawDevice::tls(addr, Arc::clone(tls)).await.unwrap();
    let ack = device.mqtt_connect(id).await.expect("CONNACK");
    assert_eq!(ack.code, ConnectReturnCode::Success);
    device
}

/// Full connections (TLS with client certificate, CONNECT, CONNACK) per second.
async fn handshakes(addr: SocketAddr, tls: &[Arc<rustls::ClientConfig>], ids: &[String]) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..HANDSHAKE_WORKERS)
        .map(|_| {
            let (next, tls, ids) = (Arc::clone(&next), tls.to_vec(), ids.to_vec());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= HANDSHAKES {
                        return;
                    }
                    let i = n % DEVICES;
                    let mut device = connect(addr, &tls[i], &ids[i]).await;
                    device.send(Packet::Disconnect).await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    HANDSHAKES as f64 / started.elapsed().as_secs_f64()
}

/// QoS 1 publishes from `PUBLISHERS` connections, `WINDOW` in flight each; messages per second
/// until `received` counts them all (or stops growing), and how many never arrived.
async fn throughput(
    addr: SocketAddr,
    tls: &[Arc<rustls::ClientConfig>],
    ids: &[String],
    received: &AtomicUsize,
) -> (f64, usize) {
    let mut devices = Vec::new();
    for i in 0..PUBLISHERS {
        devices.push((
            connect(addr, &tls[i], &ids[i]).await,
            format!("d/{}/up", ids[i]),
        ));
    }
    let total = PUBLISHERS * PER_PUBLISHER;
    let before = received.load(Ordering::Relaxed);
    let started = Instant::now();
    let publishers: Vec<_> = devices
        .into_iter()
        .map(|(device, topic)| tokio::spawn(publish_all(device, topic)))
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let mut last = (0, Instant::now());
    loop {
        let got = received.load(Ordering::Relaxed) - before;
        if got >= total {
            break;
        }
        if got != last.0 {
            last = (got, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(2) {
            break; // nothing more is coming
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got = received.load(Ordering::Relaxed) - before;
    let elapsed = if got >= total {
        started.elapsed()
    } else {
        last.1 - started
    };
    (got as f64 / elapsed.as_secs_f64(), total - got.min(total))
}

/// Publishes `PER_PUBLISHER` frames at QoS 1 keeping `WINDOW` unacknowledged, then waits for
/// the last PUBACK.
async fn publish_all(device: RawDevice, topic: String) {
    let (mut reader, mut writer) = tokio::io::split(device.into_stream());
    let window = Arc::new(Semaphore::new(WINDOW));
    let acks = Arc::clone(&window);
    let ack_reader = tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut acked = 0;
        while acked < PER_PUBLISHER {
            match Packet::read(&mut buf, 1 << 20) {
                Ok(Packet::PubAck(_)) => {
                    acked += 1;
                    acks.add_permits(1);
                }
                Ok(_) => {}
                Err(mqttbytes::Error::InsufficientBytes(_)) => {
                    buf.reserve(16 * 1024);
                    if reader.read_buf(&mut buf).await.unwrap() == 0 {
                        panic!("connection closed after {acked} acks");
                    }
                }
                Err(e) => panic!("bad packet: {e}"),
            }
        }
    });
    let mut out = BytesMut::with_capacity(16 * 1024);
    for n in 0..PER_PUBLISHER {
        window.acquire().await.unwrap().forget();
        let mut publish = Publish::new(topic.as_str(), QoS::AtLeastOnce, FRAME.to_vec());
        publish.pkid = u16::try_from(n % 65_535 + 1).unwrap();
        Packet::Publish(publish).write(&mut out, 1 << 20).unwrap();
        if window.available_permits() == 0 || n + 1 == PER_PUBLISHER {
            writer.write_all(&out).await.unwrap();
            out.clear();
        }
    }
    ack_reader.await.unwrap();
}

/// The same load against `mosquitto` with TLS and client certificates, counted by one
/// subscriber on `d/+/up`. `None` when mosquitto is not installed.
async fn mosquitto_reference(
    data: &Path,
    tls: &[Arc<rustls::ClientConfig>],
    ids: &[String],
) -> Option<f64> {
    let port = free_port();
    let conf = data.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
             require_certificate true\nuse_identity_as_username true\npersistence false\n\
             log_dest none\nmax_queued_messages 1000000\n\
             # Stay root when started as root: the server key is readable by its owner only.\n\
             user root\n",
            ca = data.join("ca.pem").display(),
            cert = data.join("server.pem").display(),
            key = data.join("server.key").display(),
        ),
    )
    .unwrap();
    let _broker = Killed(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stderr(Stdio::null())
            .spawn()
            .ok()?,
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(addr).await;

    let received = Arc::new(AtomicUsize::new(0));
    let mut subscriber = connect(addr, &tls[DEVICES - 1], &ids[DEVICES - 1]).await;
    // QoS 0 out, like the agent's local link: the subscriber never has to acknowledge.
    let mut subscribe = Subscribe::new("d/+/up", QoS::AtMostOnce);
    subscribe.pkid = 1;
    subscriber.send(Packet::Subscribe(subscribe)).await.unwrap();
    let suback = subscriber.recv(Duration::from_secs(5)).await.unwrap();
    assert!(matches!(suback, Some(Packet::SubAck(_))), "{suback:?}");
    let counter = Arc::clone(&received);
    let consumer = tokio::spawn(async move {
        let (mut reader, _writer) = tokio::io::split(subscriber.into_stream());
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            match Packet::read(&mut buf, 1 << 20) {
                Ok(Packet::Publish(_)) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(mqttbytes::Error::InsufficientBytes(_)) => {
                    buf.reserve(64 * 1024);
                    if reader.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    let (rate, lost) = throughput(addr, tls, ids, &received).await;
    consumer.abort();
    if lost > 0 {
        eprintln!("mosquitto reference: {lost} messages did not reach the subscriber");
    }
    Some(rate)
}

/// Resident memory of a real `edge-agent run` idle and holding `DEVICES` connections, in MB.
async fn resident_memory(
    data: &Path,
    tls: &[Arc<rustls::ClientConfig>],
    ids: &[String],
) -> (f64, f64) {
    let port = free_port();
    let path = data.join("agent.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "listen = \"127.0.0.1:0\"\n\n[http]",
        &format!("listen = \"127.0.0.1:{port}\"\n\n[http]"),
    );
    std::fs::write(&path, text).unwrap();
    let log = std::fs::File::create(data.join("agent.log")).unwrap();
    let mut agent = Killed(
        Command::new(env!("CARGO_BIN_EXE_edge-agent"))
            .args(["run", "--data-dir"])
            .arg(data)
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(status) = agent.0.try_wait().unwrap() {
        let log = std::fs::read_to_string(data.join("agent.log")).unwrap_or_default();
        panic!("edge-agent run exited ({status}):\n{log}");
    }
    wait_listening(addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_mb(agent.0.id());
    let mut held = Vec::with_capacity(DEVICES);
    for (tls, id) in tls.iter().zip(ids) {
        held.push(connect(addr, tls, id).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = rss_mb(agent.0.id());
    drop(held);
    (idle, loaded)
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}
