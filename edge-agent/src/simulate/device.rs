//! One simulated device's connection: MQTT over mutual TLS with its own bundle (rumqttc).
//!
//! Each device is two tasks: `drive` here polls rumqttc's event loop (whose `poll` is not
//! cancel-safe, so it never sits in a `select!` with other work) and reports to
//! `firmware::behave`, which owns the device's state and publishes with `try_publish`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use firmware_protocol::{Label, PressPattern};
use rumqttc::{
    AsyncClient, Event, EventLoop, Incoming, MqttOptions, NetworkOptions, Outgoing,
    TlsConfiguration, Transport,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use shared::ids::DeviceId;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use super::firmware::behave;
use super::{Rng, SimulateError, Stats};
use crate::store::DeviceKind;

/// Who a simulated device is and how it behaves.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    pub(super) id: DeviceId,
    pub(super) kind: DeviceKind,
    pub(super) room: Label,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) heartbeat: Duration,
    pub(super) press_retry_limit: u32,
}

/// What the event loop tells the device's firmware.
#[derive(Debug)]
pub(super) enum Link {
    /// Connected (CONNACK received).
    Up,
    /// The connection was lost.
    Down,
    /// A frame on the device's `down` topic.
    Frame(Bytes),
}

/// Starts the device's two tasks on `tracker`; `presses` delivers the presses the orchestrator
/// schedules for it.
pub(super) fn spawn(
    spec: Spec,
    tls: Arc<rustls::ClientConfig>,
    tracker: &tokio_util::task::TaskTracker,
    shared: Shared,
    presses: mpsc::Receiver<PressPattern>,
    rng: Rng,
) {
    let mut options = MqttOptions::new(spec.id.as_str(), spec.host.clone(), spec.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    // rumqttd never sets TCP_NODELAY; without it on our side QoS 1 publishes wait on Nagle.
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let (link_tx, link_rx) = mpsc::channel(64);
    tracker.spawn(drive(eventloop, link_tx, shared.clone()));
    tracker.spawn(behave(spec, client, link_rx, presses, shared, rng));
}

/// What every device of a run shares.
#[derive(Debug, Clone)]
pub(super) struct Shared {
    pub(super) stats: Arc<Stats>,
    /// Connections still handshaking: the gate refuses more than a few dozen pending
    /// connections from one address, so devices take turns to connect.
    pub(super) connect_slots: Arc<Semaphore>,
    pub(super) cancel: CancellationToken,
}

/// The TLS client configuration of the bundle in `dir`: trust its `ca.pem`, present
/// `device.pem` with `device.key`.
pub(super) fn bundle_tls(dir: &Path) -> Result<Arc<rustls::ClientConfig>, SimulateError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| SimulateError::Bundle {
        dir: dir.to_owned(),
        reason: format!("{what}: {e}"),
    };
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(dir.join("ca.pem")).map_err(|e| bad("ca.pem", &e))?;
    roots.add(ca).map_err(|e| bad("ca.pem", &e))?;
    let chain = CertificateDer::pem_file_iter(dir.join("device.pem"))
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| bad("device.pem", &e))?;
    let key =
        PrivateKeyDer::from_pem_file(dir.join("device.key")).map_err(|e| bad("device.key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad("device certificate and key", &e))?;
    Ok(Arc::new(config))
}

// === the event loop ===

async fn drive(mut eventloop: EventLoop, link: mpsc::Sender<Link>, shared: Shared) {
    let stats = &shared.stats;
    let mut backoff = Duration::from_millis(500);
    loop {
        let slot = tokio::select! {
            () = shared.cancel.cancelled() => return,
            slot = Arc::clone(&shared.connect_slots).acquire_owned() => slot,
        };
        // Connecting: cancellation may interrupt it, nothing is lost.
        let first = tokio::select! {
            () = shared.cancel.cancelled() => return,
            event = eventloop.poll() => event,
        };
        drop(slot);
        match first {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                backoff = Duration::from_millis(500);
                stats.connected.fetch_add(1, Relaxed);
                if link.send(Link::Up).await.is_err() {
                    return;
                }
                // Connected: poll until the connection ends. The firmware task disconnects
                // cleanly on shutdown, which ends this loop.
                let stop = serve(&mut eventloop, &link, stats).await;
                stats.connected.fetch_sub(1, Relaxed);
                if stop || link.send(Link::Down).await.is_err() {
                    return;
                }
            }
            Ok(_) => continue,
            Err(e) => {
                stats.connect_failures.fetch_add(1, Relaxed);
                tracing::debug!(error = %e, "connect failed");
            }
        }
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Polls a connected event loop; true when the device disconnected on purpose.
async fn serve(eventloop: &mut EventLoop, link: &mpsc::Sender<Link>, stats: &Stats) -> bool {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::Publish(publish))) => {
                if link.send(Link::Frame(publish.payload)).await.is_err() {
                    return true;
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                stats.frames_sent.fetch_add(1, Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return true,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "connection lost");
                return false;
            }
        }
    }
}
