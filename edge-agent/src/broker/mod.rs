//! The embedded MQTT broker (rumqttd): the only module that imports rumqttd.
//!
//! rumqttd is the gateway's internal message bus and is never exposed to the network. Devices
//! never connect to it: the gate speaks MQTT to them and moves their messages through its own
//! local link ([`GateLink`]): it publishes each device's uplinks to `d/{id}/up` and is
//! subscribed to `d/+/down` and to `hallwatch/#` (integration messages, which the gate retains
//! and serves to integrations). The agent has a second link: uplinks from `d/+/up` arrive on a
//! channel, downlinks to `d/{id}/down` and integration messages to `hallwatch/…` go out
//! through [`Downlinks`]. Both directions therefore
//! pass through rumqttd's router (see ARCHITECTURE.md for why it is not one connection per
//! device: rumqttd's per-connection state).
//!
//! rumqttd refuses to start without a listener, so it keeps one on loopback whose
//! authentication refuses every client: nothing outside this process can use the broker.
//!
//! The local links' calls block (bounded channels into the router), so each direction of each
//! link runs on its own OS thread, never on a tokio worker.

mod gate_link;
mod link;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use rumqttd::{Config, ConnectionSettings, RouterConfig, SegmentConfig, ServerSettings};
use tokio::sync::{mpsc, oneshot};

pub use crate::bus::{DownlinkError, Uplink};
pub use gate_link::{GateLink, LinkClosed, UpTopic, UplinkPublisher};
pub use link::{Downlinks, INTEGRATION_PREFIX};

/// How the broker is sized. The defaults suit a school gateway: a few thousand devices,
/// frames of at most a few hundred bytes.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Most concurrent broker connections: the gate's and the agent's local links, with room
    /// to spare. Devices do not count: they never connect to the broker.
    pub max_connections: usize,
    /// Largest MQTT payload the broker accepts, in bytes.
    pub max_packet_bytes: usize,
    /// rumqttd keeps a log per *subscription filter* (not per topic), rolling over after
    /// `segment_count` segments of `segment_bytes`, and keeps it even once read. This sizes
    /// the log of any filter without a size of its own below (there is none today).
    pub segment_bytes: usize,
    /// See `segment_bytes`.
    pub segment_count: usize,
    /// The agent's `d/+/up` filter holds every device's uplinks in one log: this is how far
    /// (in bytes, times two segments) the agent may fall behind before rumqttd skips frames.
    pub uplink_log_bytes: usize,
    /// Last wills of every device in one log; sized for every device of a school losing power
    /// at once.
    pub will_log_bytes: usize,
    /// The gate's `d/+/down` filter holds every downlink in one log, likewise.
    pub downlink_log_bytes: usize,
    /// The gate's `hallwatch/#` filter holds every integration message (alert changes and
    /// the status, JSON of up to a few tens of KiB) in one log, likewise.
    pub integration_log_bytes: usize,
    /// Uplinks buffered between the broker thread and the agent before back-pressure.
    pub uplink_buffer: usize,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            max_connections: 8,
            max_packet_bytes: 1024,
            // rumqttd panics below 1024; its default (100 MB × 10 per filter) would let a busy
            // gateway eat the appliance.
            segment_bytes: 4 * 1024,
            segment_count: 2,
            // rumqttd keeps this log even once read and counts payload bytes, not its own
            // ~250 bytes of memory per entry: 2 MiB of 18-byte heartbeats held 113,000 entries
            // and ~30 MB (BENCHMARKS.md, edge). 512 KiB (~28,000 heartbeats, ~7 MB) covers the
            // moment between rumqttd and the agent's link thread, which forwards every uplink
            // at once into `uplink_buffer`; that channel, not this log, absorbs a slow engine.
            uplink_log_bytes: 512 * 1024,
            will_log_bytes: 512 * 1024,
            // ~1,000 downlinks of 64 bytes: the agent sends a few per device event.
            downlink_log_bytes: 128 * 1024,
            // The gate hands each message to the hub without waiting; a burst of alert changes
            // with large statuses must still fit.
            integration_log_bytes: 1024 * 1024,
            uplink_buffer: 65_536,
        }
    }
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    /// The gate's link, to be started by the gate.
    pub gate: GateLink,
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
    #[error("the broker refused a local link: {0}")]
    Link(String),
    #[error("the broker did not start listening on {0} within 5 seconds")]
    NotListening(SocketAddr),
}

/// Starts rumqttd on a free loopback port with the agent's and the gate's links attached.
pub async fn start(settings: &BrokerSettings) -> Result<Broker, BrokerError> {
    // rumqttd binds the port itself; reserve a free one and hand it over. The window between
    // releasing and rumqttd binding is microseconds, and a clash fails loudly below.
    let addr = {
        let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(BrokerError::Port)?;
        probe.local_addr().map_err(BrokerError::Port)?
    };
    let mut broker = rumqttd::Broker::new(config(settings, addr));
    let (uplinks, downlinks) = link::attach(&broker, settings.uplink_buffer)?;
    let gate = GateLink::attach(&broker)?;

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
    tracing::debug!(%addr, "embedded broker started (its listener refuses every client)");
    Ok(Broker {
        gate,
        uplinks,
        downlinks,
        failed,
    })
}

fn config(settings: &BrokerSettings, addr: SocketAddr) -> Config {
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 5_000,
        max_payload_size: settings.max_packet_bytes,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    // Only the local links use the broker; a client of the listener is refused whatever it
    // sends (rumqttd also refuses a CONNECT without credentials once a handler is set).
    connections.set_auth_handler(
        |_client_id: String, _username: String, _password: String| async { false },
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
                [
                    (link::UPLINK_FILTER, settings.uplink_log_bytes),
                    (link::WILL_FILTER, settings.will_log_bytes),
                    (gate_link::DOWNLINK_FILTER, settings.downlink_log_bytes),
                    (
                        gate_link::INTEGRATION_FILTER,
                        settings.integration_log_bytes,
                    ),
                ]
                .into_iter()
                .map(|(filter, bytes)| {
                    let segments = SegmentConfig {
                        max_segment_size: (bytes / 2).max(1024),
                        max_segment_count: 2,
                    };
                    (filter.to_owned(), segments)
                })
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
