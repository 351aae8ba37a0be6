//! One connection: TLS handshake, identity, the MQTT CONNECT check, then the client's MQTT
//! session until it ends: a device's (`mqtt`, and its last will if it ended abnormally) or an
//! integration's (`integration`). A refused handshake and a refused CONNECT are logged at warn
//! with their reason: they are what an installer reads when a device cannot connect.
//!
//! What a device may do is fixed: be registered, connect with its certificate's id as client id
//! (a malformed CONNECT is closed without a CONNACK, any other refusal gets its code), publish to
//! `d/{id}/up`, subscribe to `d/{id}/down`, ping and disconnect. An integration may connect with
//! any client id but without a last will, subscribe under `hallwatch/`, ping and disconnect.
//! Anything else ends the connection (and only that connection).

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes;
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Packet};
use shared::ids::DeviceId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::GateState;
use super::identity::{Identity, Role};
use super::limits::Pending;
use super::wire::{READ_CHUNK, Wire, parse};
use super::{integration, mqtt};
use crate::broker::UpTopic;
use crate::integration::IntegrationId;

/// How long a last will may wait for room in the uplink queue before it is given up.
const WILL_WAIT: Duration = Duration::from_secs(5);
/// How long closing the TLS stream may take; a peer that stopped reading cannot hold it.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a connection ended. Logged; never sent to the client.
#[derive(Debug, thiserror::Error)]
pub(super) enum Ended {
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake took too long")]
    HandshakeTimeout,
    #[error("no usable identity in the client certificate: {0}")]
    Identity(String),
    #[error("certificate is for school {0}, this gateway serves another")]
    OtherSchool(String),
    #[error("no MQTT CONNECT in time")]
    ConnectTimeout,
    #[error("refused CONNECT: {0}")]
    Refused(&'static str),
    #[error("protocol violation: {0}")]
    Violation(String),
    #[error("protocol violation: {0}")]
    Strict(super::strict::Refusal),
    #[error("malformed or oversized MQTT packet: {0}")]
    Malformed(mqttbytes::Error),
    #[error("cannot encode a packet for the device: {0}")]
    Encode(mqttbytes::Error),
    #[error("the broker link is closed")]
    Broker,
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the device did not read what the gate wrote in time")]
    WriteTimeout,
    #[error("nothing heard from the device for {0:?} (1.5 × its keep-alive)")]
    KeepAlive(Duration),
    #[error("replaced by a newer connection or revoked")]
    Superseded,
    #[error("the gateway is shutting down")]
    Shutdown,
    #[error("closed by the device without DISCONNECT")]
    Closed,
    #[error("disconnected by the device")]
    Disconnected,
}

impl Ended {
    /// Whether the device's last will is published: on every end except a DISCONNECT (MQTT
    /// 3.1.1 §3.1.2.5) and the gateway's own shutdown, when nobody would consume it.
    fn publishes_will(&self) -> bool {
        !matches!(self, Ended::Disconnected | Ended::Shutdown)
    }
}

/// Runs one connection to its end.
pub(super) async fn run(
    state: Arc<GateState>,
    stream: TcpStream,
    peer: SocketAddr,
    pending: Pending,
    shutdown: CancellationToken,
) -> Result<(), Ended> {
    let limits = state.admission.limits().clone();
    let acceptor = TlsAcceptor::from(state.tls.config());
    let mut tls = match timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            // An installer looks here first when a device cannot connect.
            if let Some(reason) = super::tls::refusal(&e) {
                tracing::warn!(reason, detail = %e, "refused a TLS handshake");
            }
            return Err(Ended::Handshake(e));
        }
        Err(_) => return Err(Ended::HandshakeTimeout),
    };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned();
    let identity = Identity::from_cert(&cert.ok_or(Ended::Identity("none".into()))?)
        .map_err(Ended::Identity)?;
    if identity.school_id != state.school {
        return Err(Ended::OtherSchool(identity.school_id.to_string()));
    }
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let connect = accept_connect(&state, &mut tls, &mut buf, &identity.role, &limits).await?;
    let mut out = BytesMut::new();
    ConnAck::new(ConnectReturnCode::Success, false)
        .write(&mut out)
        .map_err(Ended::Encode)?;
    drop(pending);
    let wire = Wire {
        stream: tls,
        buf,
        out,
        max_packet: limits.max_packet_bytes,
    };
    let serial = identity.serial;
    match identity.role {
        Role::Device(device) => {
            serve_device(&state, wire, connect, device, serial, peer, shutdown).await
        }
        Role::Integration(integration) => {
            serve_integration(&state, wire, &connect, &integration, serial, peer, shutdown).await
        }
    }
}

/// Reads the client's CONNECT and accepts it, or answers it with the CONNACK code the refusal
/// calls for (none for a malformed one) and says why the connection ends.
async fn accept_connect(
    state: &GateState,
    tls: &mut TlsStream<TcpStream>,
    buf: &mut BytesMut,
    role: &Role,
    limits: &super::GateLimits,
) -> Result<Connect, Ended> {
    let first = match timeout(limits.connect_timeout, read_packet(tls, buf, limits)).await {
        Ok(first) => first,
        Err(_) => return Err(Ended::ConnectTimeout),
    };
    let verdict = match first {
        Ok(Packet::Connect(connect)) => check_connect(connect, role),
        // Not a CONNECT at all: closed without a CONNACK, which answers CONNECTs only.
        Ok(_) => {
            return Err(Ended::Violation(
                "the first packet is not CONNECT [MQTT-3.1.0-1]".into(),
            ));
        }
        // The CONNECT refusals the spec answers (another protocol level, say) get their code.
        Err(Ended::Strict(refusal)) => match refusal.connack {
            Some(code) => Err((code, Ended::Strict(refusal))),
            None => return Err(Ended::Strict(refusal)),
        },
        Err(ended) => return Err(ended),
    };
    let verdict = match (verdict, role) {
        (Ok(connect), Role::Device(device)) => match state.roster.is_registered(device).await {
            Ok(true) => Ok(connect),
            Ok(false) => Err((
                ConnectReturnCode::NotAuthorized,
                Ended::Refused("the certificate names no registered device"),
            )),
            Err(e) => {
                tracing::error!(%device, error = %e, "cannot read the registered devices");
                Err((
                    ConnectReturnCode::ServiceUnavailable,
                    Ended::Refused("cannot read the registered devices"),
                ))
            }
        },
        (verdict, _) => verdict,
    };
    match verdict {
        Ok(connect) => Ok(connect),
        Err((code, ended)) => {
            let code_text = format!("{} ({code:?})", code as u8);
            tracing::warn!(client = %role, code = code_text, reason = %ended, "refused CONNECT");
            refuse(tls, code).await;
            Err(ended)
        }
    }
}

/// A device's session, from its accepted CONNECT to its end (and its last will).
async fn serve_device(
    state: &GateState,
    wire: Wire<TlsStream<TcpStream>>,
    connect: Connect,
    device: DeviceId,
    serial: Vec<u8>,
    peer: SocketAddr,
    shutdown: CancellationToken,
) -> Result<(), Ended> {
    // Registered before the CONNACK goes out: a device that has it is reachable.
    let (registration, downlinks) = state.registry.register(&device, serial);
    tracing::debug!(%device, %peer, keep_alive = connect.keep_alive, "device connected");
    // Copied so that the session does not keep the CONNECT's read buffer alive for it.
    let will = connect
        .last_will
        .map(|will| Bytes::copy_from_slice(&will.message));
    let limits = state.admission.limits();
    let device_rate = super::limits::uplink_rate(limits.device_uplinks_per_s);
    let mut session = mqtt::Session {
        wire,
        up: UpTopic::of(&device),
        down: format!("d/{device}/down"),
        rates: [&device_rate, &state.admission.total_uplinks],
        uplink: &state.uplink,
        downlinks,
        subscribed: false,
        silence: mqtt::silence_allowed(connect.keep_alive),
    };
    let ended = tokio::select! {
        ended = session.serve() => ended,
        () = registration.end.cancelled() => Ended::Superseded,
        () = shutdown.cancelled() => Ended::Shutdown,
    };
    if let Some(will) = will.filter(|_| ended.publishes_will()) {
        publish_will(state, &UpTopic::will_of(&device), will, &device).await;
    }
    let _ = timeout(CLOSE_WAIT, session.wire.stream.shutdown()).await;
    match ended {
        Ended::Disconnected => Ok(()),
        other => Err(other),
    }
}

/// An integration's session, from its accepted CONNECT to its end.
async fn serve_integration(
    state: &GateState,
    wire: Wire<TlsStream<TcpStream>>,
    connect: &Connect,
    integration: &IntegrationId,
    serial: Vec<u8>,
    peer: SocketAddr,
    shutdown: CancellationToken,
) -> Result<(), Ended> {
    // Registered before the CONNACK goes out, like a device.
    let registration = state.integrations.register(integration, serial);
    tracing::info!(%integration, %peer, client_id = %connect.client_id, "integration connected");
    let mut session = integration::Session {
        wire,
        hub: &state.integrations,
        id: registration.id,
        notify: std::sync::Arc::clone(&registration.notify),
        silence: mqtt::silence_allowed(connect.keep_alive),
        inflight: std::collections::VecDeque::new(),
        next_pkid: 0,
    };
    let ended = tokio::select! {
        ended = session.serve() => ended,
        () = registration.end.cancelled() => Ended::Superseded,
        () = shutdown.cancelled() => Ended::Shutdown,
    };
    let _ = timeout(CLOSE_WAIT, session.wire.stream.shutdown()).await;
    tracing::info!(%integration, reason = %ended, "integration disconnected");
    match ended {
        Ended::Disconnected => Ok(()),
        other => Err(other),
    }
}

/// Publishes a last will through the uplink queue, as if the device had sent it.
async fn publish_will(
    state: &GateState,
    up: &UpTopic,
    will: Bytes,
    device: &shared::ids::DeviceId,
) {
    match timeout(WILL_WAIT, state.uplink.publish(up, will)).await {
        Ok(Ok(())) => tracing::debug!(%device, "published the device's last will"),
        Ok(Err(_)) | Err(_) => tracing::warn!(%device, "could not publish the device's last will"),
    }
}

/// Answers a refused CONNECT with `code` and closes the connection. Best effort: the
/// connection closes either way.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, code: ConnectReturnCode) {
    let mut out = BytesMut::new();
    if ConnAck::new(code, false).write(&mut out).is_err() {
        return;
    }
    let _ = timeout(CLOSE_WAIT, async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads one complete packet, refusing anything over the size limit before reading it all.
async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    limits: &super::GateLimits,
) -> Result<Packet, Ended> {
    loop {
        if let Some(packet) = parse(buf, limits.max_packet_bytes)? {
            return Ok(packet);
        }
        buf.reserve(READ_CHUNK);
        if stream.read_buf(buf).await? == 0 {
            return Err(Ended::Closed);
        }
    }
}

/// The client's CONNECT, or the CONNACK code and reason to refuse it with.
fn check_connect(connect: Connect, role: &Role) -> Result<Connect, (ConnectReturnCode, Ended)> {
    let refused = |code, why| Err((code, Ended::Refused(why)));
    match role {
        Role::Device(device) => {
            if connect.client_id != device.as_str() {
                return refused(
                    ConnectReturnCode::BadClientId,
                    "client id is not the certificate's device id",
                );
            }
            if let Some(will) = &connect.last_will
                && will.topic.as_bytes() != UpTopic::of(device).as_bytes()
            {
                return refused(
                    ConnectReturnCode::NotAuthorized,
                    "last will outside the device's up topic",
                );
            }
        }
        // The client id is only a label here (the identity is the certificate's), so any
        // MQTT client's default works. A will would be a publish, which integrations may not.
        Role::Integration(_) => {
            if connect.last_will.is_some() {
                return refused(
                    ConnectReturnCode::NotAuthorized,
                    "an integration may not set a last will (it may not publish)",
                );
            }
        }
    }
    Ok(connect)
}
