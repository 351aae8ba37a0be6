//! The device gate: the only thing on the school network that devices and integrations talk to.
//!
//! It owns the device-facing listener. Each connection is handshaken in its own task with a
//! timeout, its client certificate verified against the gateway CA and CRL; the identity comes
//! from the certificate: a device, or an integration (OU `integration`, see
//! [`crate::integration`]); a refused handshake is logged with its reason. A device must be
//! registered and its MQTT CONNECT must use its id; a refused CONNECT is answered with its
//! CONNACK code and logged. From then on the gate is the client's MQTT server, reading every
//! packet as strictly as MQTT 3.1.1 demands. For a device it checks every packet against the device's own
//! topics, hands uplinks to the broker through the gate's local link and writes the device's
//! downlinks, which the link's receiving thread dispatches through the registry (see
//! [`crate::broker::GateLink`]). For an integration it allows subscriptions under `hallwatch/`
//! only and no publish at all, and writes the retained and live `hallwatch/…` messages the
//! link hands to the hub. Connections are capped in total, while pending and per source
//! address; a revoked device or integration is disconnected when the CRL changes.
//!
//! # Layout
//! - `limits`: [`GateLimits`] and admission counting.
//! - `tls`: server config, client verification, CRL reload.
//! - `identity`: the device or integration identity from its certificate.
//! - `roster`: which device ids are registered (a certificate must name one).
//! - `registry`: connected devices (replacement, revocation, downlink dispatch).
//! - `session`: one connection, from handshake to the CONNECT check and the end.
//! - `strict`: the MQTT 3.1.1 rules every packet from a client must meet, on its raw bytes.
//! - `wire`: reading, checking, parsing and writing MQTT packets on one connection.
//! - `mqtt`: the MQTT 3.1.1 server side of a connected device's session.
//! - `retained`: the retained message per `hallwatch/` topic, bounded.
//! - `hub`: connected integrations, their subscriptions and bounded queues; fan-out.
//! - `integration`: the MQTT 3.1.1 server side of a connected integration's session.

mod hub;
mod identity;
mod integration;
mod limits;
mod mqtt;
mod registry;
mod retained;
mod roster;
mod session;
mod strict;
mod tls;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shared::ids::{DeviceId, SchoolId};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::broker::{BrokerError, GateLink, UplinkPublisher};
pub use limits::GateLimits;
pub use tls::TlsFiles;

/// How often closed alerts are checked for having been retained long enough.
const SWEEP_RETAINED: Duration = Duration::from_secs(60);

/// How often the gate looks at `crl.pem` for changes. Revocation takes effect within this
/// (plus a moment), well inside the 2 seconds promised.
const CRL_POLL: Duration = Duration::from_millis(500);

/// Why the gate could not start.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Tls { path: PathBuf, reason: String },
    #[error("cannot start the gate's broker link: {0}")]
    Link(#[source] BrokerError),
}

/// Uplinks queued between the gate's sessions and the link's publisher thread. Enough for a
/// burst from every publishing device; when full, devices wait and feel TCP back-pressure.
const UPLINK_QUEUE: usize = 4_096;

/// A bound gate, ready to [`run`](Gate::run).
#[derive(Debug)]
pub struct Gate {
    listener: TcpListener,
    state: Arc<GateState>,
}

/// A view of a running gate, for status pages and tests.
#[derive(Debug, Clone)]
pub struct GateHandle {
    state: Arc<GateState>,
}

#[derive(Debug)]
struct GateState {
    school: SchoolId,
    tls: tls::TlsState,
    admission: Arc<limits::Admission>,
    registry: Arc<registry::Registry>,
    roster: roster::Roster,
    integrations: Arc<hub::Hub>,
    uplink: UplinkPublisher,
    /// The listener is bound and its accept loop has not ended (connections wait in the
    /// backlog between `bind` and `run`).
    accepting: AtomicBool,
}

impl Gate {
    /// Loads the TLS material, binds the device listener and starts the broker link.
    pub async fn bind(
        listen: SocketAddr,
        school: SchoolId,
        files: TlsFiles,
        limits: GateLimits,
        link: GateLink,
    ) -> Result<Gate, GateError> {
        let roster = roster::Roster::new(files.db.clone());
        let tls = tls::TlsState::load(files)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| GateError::Bind {
                addr: listen,
                source,
            })?;
        let registry = Arc::new(registry::Registry::default());
        let integrations = Arc::new(hub::Hub::default());
        let dispatch = Arc::clone(&registry);
        let announce = Arc::clone(&integrations);
        let uplink = link
            .start(
                UPLINK_QUEUE,
                move |device, frame| dispatch.deliver(&device, frame),
                move |topic, payload| announce.publish(topic, payload),
            )
            .map_err(GateError::Link)?;
        let state = GateState {
            school,
            tls,
            admission: Arc::new(limits::Admission::new(limits)),
            registry,
            roster,
            integrations,
            uplink,
            accepting: AtomicBool::new(true),
        };
        Ok(Gate {
            listener,
            state: Arc::new(state),
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle for reading the gate's counters while it runs.
    pub fn handle(&self) -> GateHandle {
        GateHandle {
            state: Arc::clone(&self.state),
        }
    }

    /// Accepts devices until `shutdown`, then closes every connection and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        tracker.spawn(watch_crl(Arc::clone(&self.state), shutdown.clone()));
        tracker.spawn(sweep_retained(Arc::clone(&self.state), shutdown.clone()));
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            let Some((slot, pending)) = self.state.admission.admit(peer.ip()) else {
                tracing::debug!(%peer, "connection limit reached; closing");
                continue; // dropping the stream closes it
            };
            let _ = stream.set_nodelay(true);
            let state = Arc::clone(&self.state);
            let shutdown = shutdown.clone();
            // Every line about this connection carries its id.
            let span = tracing::info_span!("connection", id = %hallwatch_service::request_id::new(), %peer);
            tracker.spawn(
                async move {
                    let _slot = slot;
                    if let Err(ended) = session::run(state, stream, peer, pending, shutdown).await {
                        tracing::debug!(reason = %ended, "device connection ended");
                    }
                }
                .instrument(span),
            );
        }
        self.state.accepting.store(false, Ordering::Relaxed);
        tracker.close();
        tracker.wait().await;
    }
}

impl GateHandle {
    /// Devices connected (past CONNECT) right now.
    pub fn connected_devices(&self) -> usize {
        self.state.registry.len()
    }

    /// The devices connected (past CONNECT) right now.
    pub fn connected_device_ids(&self) -> Vec<DeviceId> {
        self.state.registry.ids()
    }

    /// Whether the device listener is bound and its accept loop runs.
    pub fn accepting(&self) -> bool {
        self.state.accepting.load(Ordering::Relaxed)
    }

    /// Integrations connected (past CONNECT) right now.
    pub fn connected_integrations(&self) -> usize {
        self.state.integrations.len()
    }

    /// Topics under `hallwatch/` with a retained message right now.
    pub fn retained_topics(&self) -> usize {
        self.state.integrations.retained()
    }

    /// Connections held right now, including those still handshaking.
    pub fn connections(&self) -> usize {
        self.state.admission.connections()
    }
}

async fn watch_crl(state: Arc<GateState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(CRL_POLL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Some(revoked) = state.tls.reload_if_changed() {
            let ended = state.registry.end_revoked(&revoked);
            if ended > 0 {
                tracing::warn!(
                    ended,
                    "disconnected devices whose certificates were revoked"
                );
            }
            let ended = state.integrations.end_revoked(&revoked);
            if ended > 0 {
                tracing::warn!(
                    ended,
                    "disconnected integrations whose certificates were revoked"
                );
            }
        }
    }
}

async fn sweep_retained(state: Arc<GateState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_RETAINED);
    loop {
        tokio::select! {
            now = tick.tick() => state.integrations.sweep(now),
            () = shutdown.cancelled() => return,
        }
    }
}
