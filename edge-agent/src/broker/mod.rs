//! The embedded MQTT broker (rumqttd): the only module that imports rumqttd.
//!
//! rumqttd is never exposed to the network. It listens on a loopback-only plain-TCP port that
//! only the gate connects to, and accepts a connection only with the per-process secret the
//! gate puts into each device's CONNECT (see ARCHITECTURE.md for why: its TLS accept loop
//! handshakes inline, it has no CRL support and it never checks a certificate's CN against the
//! client id). The agent talks to devices through a local link: uplinks from `d/+/up` arrive on
//! a channel, downlinks to `d/{id}/down` go out through [`Downlinks`].
//!
//! The local link's calls block (a bounded crossbeam-style channel into the router), so each
//! direction runs on its own OS thread, never on a tokio worker.

mod link;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttd::{Config, ConnectionSettings, RouterConfig, SegmentConfig, ServerSettings};
use shared::ids::DeviceId;
use tokio::sync::{mpsc, oneshot};

pub use link::{DownlinkError, Downlinks};

/// How the broker is sized. The defaults suit a school gateway: a few thousand devices,
/// frames of at most a few hundred bytes.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Most concurrent MQTT connections (devices plus the agent's own link).
    pub max_connections: usize,
    /// Largest MQTT packet accepted from a connection, in bytes.
    pub max_packet_bytes: usize,
    /// rumqttd keeps a log per *subscription filter* (not per topic), rolling over after
    /// `segment_count` segments of `segment_bytes`, and keeps it even once read. Every
    /// device's `down` topic is such a filter, so these stay small.
    pub segment_bytes: usize,
    /// See `segment_bytes`.
    pub segment_count: usize,
    /// The agent's `d/+/up` filter holds every device's uplinks in one log: this is how far
    /// (in bytes, times two segments) the agent may fall behind before rumqttd skips frames.
    pub uplink_log_bytes: usize,
    /// Uplinks buffered between the broker thread and the agent before back-pressure.
    pub uplink_buffer: usize,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            max_connections: 4096,
            max_packet_bytes: 1024,
            // rumqttd panics below 1024. 4 KiB × 2 per device `down` filter keeps ~100 frames
            // (the default 100 MB × 10 per filter would let a busy gateway eat the appliance).
            segment_bytes: 4 * 1024,
            segment_count: 2,
            // ~40,000 uplinks of 64 bytes: half a second at the gate's default total rate.
            uplink_log_bytes: 4 * 1024 * 1024,
            uplink_buffer: 65_536,
        }
    }
}

/// One frame a device published on its `up` topic.
#[derive(Debug, Clone)]
pub struct Uplink {
    /// The publishing device (from the topic, which the gate pins to the certificate's id).
    pub device_id: DeviceId,
    /// The frame's bytes, not yet decoded.
    pub payload: Bytes,
}

/// Where and how the gate reaches the broker.
#[derive(Debug, Clone)]
pub struct Internal {
    /// The loopback address of rumqttd's plain-TCP listener.
    pub addr: SocketAddr,
    /// The password rumqttd accepts; random per process and known only to the gate.
    pub secret: Arc<str>,
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    /// How the gate connects.
    pub internal: Internal,
    /// Every frame devices publish on `d/{id}/up`.
    pub uplinks: mpsc::Receiver<Uplink>,
    /// Frames to devices on `d/{id}/down`.
    pub downlinks: Downlinks,
    /// Resolves if the broker stops: rumqttd has no shutdown API, so this only happens when its
    /// listener failed, and the agent must treat it as fatal.
    pub failed: oneshot::Receiver<String>,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot reserve a loopback port for the broker: {0}")]
    Port(std::io::Error),
    #[error("cannot start a broker thread: {0}")]
    Thread(std::io::Error),
    #[error("the broker refused the agent's local link: {0}")]
    Link(String),
    #[error("the broker did not start listening on {0} within 5 seconds")]
    NotListening(SocketAddr),
}

/// Starts rumqttd on a free loopback port with the agent's local link attached.
pub async fn start(settings: &BrokerSettings) -> Result<Broker, BrokerError> {
    let secret: Arc<str> = random_secret().into();
    // rumqttd binds the port itself; reserve a free one and hand it over. The window between
    // releasing and rumqttd binding is microseconds, and a clash fails loudly below.
    let addr = {
        let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(BrokerError::Port)?;
        probe.local_addr().map_err(BrokerError::Port)?
    };
    let mut broker = rumqttd::Broker::new(config(settings, addr, &secret));
    let (uplinks, downlinks) = link::attach(&broker, settings.uplink_buffer)?;

    let (failed_tx, failed) = oneshot::channel();
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let why = match broker.start() {
                Ok(()) => "the broker's listener stopped".to_owned(),
                Err(e) => format!("the broker failed: {e}"),
            };
            tracing::error!("{why}");
            let _ = failed_tx.send(why);
        })
        .map_err(BrokerError::Thread)?;

    wait_listening(addr).await?;
    tracing::info!(%addr, "embedded broker listening on loopback");
    Ok(Broker {
        internal: Internal { addr, secret },
        uplinks,
        downlinks,
        failed,
    })
}

fn config(settings: &BrokerSettings, addr: SocketAddr, secret: &Arc<str>) -> Config {
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 5_000,
        max_payload_size: settings.max_packet_bytes,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let secret = Arc::clone(secret);
    // The gate sets username = client id = the certificate's device id, password = secret.
    connections.set_auth_handler(
        move |client_id: String, username: String, password: String| {
            let ok = password.as_bytes() == secret.as_bytes() && username == client_id;
            async move { ok }
        },
    );
    let server = ServerSettings {
        name: "gate".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: settings.max_connections,
            // Per round of the router's scheduler; larger rounds let the agent's link drain the
            // shared uplink log faster than 100 devices fill it.
            max_outgoing_packet_count: 1_000,
            max_segment_size: settings.segment_bytes.max(1024),
            max_segment_count: settings.segment_count.max(1),
            custom_segment: Some(
                [(
                    link::UPLINK_FILTER.to_owned(),
                    SegmentConfig {
                        max_segment_size: (settings.uplink_log_bytes / 2).max(1024),
                        max_segment_count: 2,
                    },
                )]
                .into_iter()
                .collect(),
            ),
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some([("gate".to_owned(), server)].into_iter().collect()),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    }
}

async fn wait_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BrokerError::NotListening(addr))
}

/// 32 random bytes as hex, from the kernel's generator (via ring, our one crypto provider).
fn random_secret() -> String {
    use rustls::crypto::ring::default_provider;
    let mut bytes = [0u8; 32];
    // `fill` only fails if the kernel has no randomness, in which case TLS is impossible too;
    // fall back to the time so that the broker still refuses strangers most of the time.
    if default_provider().secure_random.fill(&mut bytes).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        bytes[..16].copy_from_slice(&now.as_nanos().to_le_bytes());
    }
    hex::encode(bytes)
}
