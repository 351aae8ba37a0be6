//! One device connection: TLS handshake, identity, the MQTT CONNECT check, then a proxy to the
//! broker that checks every packet the device sends.
//!
//! What a device may do is fixed: connect with its certificate's id as client id, publish to
//! `d/{id}/up`, subscribe to `d/{id}/down`, and the protocol's acks, pings and disconnect.
//! Anything else ends the connection (and only that connection). Packets from the broker to
//! the device are passed through unchanged: the device can only be subscribed to its own
//! `down` topic, so the broker has nothing else to send it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Login, Packet};
use rumqttc::mqttbytes::{self, QoS, check};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::GateState;
use super::identity::DeviceIdentity;
use super::limits::{Pending, UplinkRate};

/// How much is read from a socket at a time. A gateway holds thousands of mostly idle
/// connections, so per-connection buffers start small and grow only under load.
const READ_CHUNK: usize = 1024;

/// Why a connection ended. Logged; never sent to the device.
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
    #[error("malformed or oversized MQTT packet: {0}")]
    Malformed(mqttbytes::Error),
    #[error("cannot reach the broker: {0}")]
    Broker(std::io::Error),
    #[error("connection closed: {0}")]
    Io(#[from] std::io::Error),
    #[error("replaced by a newer connection or revoked")]
    Superseded,
    #[error("the gateway is shutting down")]
    Shutdown,
    #[error("closed by the device")]
    Closed,
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
    let tls = match timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
        Ok(result) => result.map_err(Ended::Handshake)?,
        Err(_) => return Err(Ended::HandshakeTimeout),
    };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned();
    let identity = DeviceIdentity::from_cert(&cert.ok_or(Ended::Identity("none".into()))?)
        .map_err(Ended::Identity)?;
    if identity.school_id != state.school {
        return Err(Ended::OtherSchool(identity.school_id.to_string()));
    }
    let device = identity.device_id.clone();
    let mut tls = tls;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let connect = match timeout(
        limits.connect_timeout,
        read_packet(&mut tls, &mut buf, &limits),
    )
    .await
    {
        Ok(packet) => packet?,
        Err(_) => return Err(Ended::ConnectTimeout),
    };
    let connect = match check_connect(connect, &identity, &state.internal.secret) {
        Ok(connect) => connect,
        Err((code, why)) => {
            let mut out = BytesMut::new();
            // The refusal is best effort: the connection closes either way.
            if ConnAck::new(code, false).write(&mut out).is_ok() {
                let _ = tls.write_all(&out).await;
            }
            let _ = tls.shutdown().await;
            return Err(Ended::Refused(why));
        }
    };

    let mut broker = TcpStream::connect(state.internal.addr)
        .await
        .map_err(Ended::Broker)?;
    broker.set_nodelay(true).map_err(Ended::Broker)?;
    let mut out = BytesMut::new();
    Packet::Connect(connect)
        .write(&mut out, usize::MAX)
        .map_err(Ended::Malformed)?;
    broker.write_all(&out).await.map_err(Ended::Broker)?;
    drop(pending);
    let registration = state.registry.register(&device, identity.serial.clone());
    tracing::debug!(%device, %peer, "device connected");

    let (mut device_rx, mut device_tx) = tokio::io::split(tls);
    let (mut broker_rx, mut broker_tx) = broker.into_split();
    let device_rate = super::limits::uplink_rate(limits.device_uplinks_per_s);
    let rates = [&device_rate, &state.admission.total_uplinks];
    let up = relay_up(
        &mut device_rx,
        &mut broker_tx,
        buf,
        &identity,
        &limits,
        rates,
    );
    // Downlinks are a few hundred bytes; a small buffer keeps idle devices cheap.
    let mut broker_rx = tokio::io::BufReader::with_capacity(READ_CHUNK, &mut broker_rx);
    let down = tokio::io::copy_buf(&mut broker_rx, &mut device_tx);
    let ended = tokio::select! {
        result = up => result.err().unwrap_or(Ended::Closed),
        result = down => result.err().map_or(Ended::Closed, Ended::Io),
        () = registration.end.cancelled() => Ended::Superseded,
        () = shutdown.cancelled() => Ended::Shutdown,
    };
    let _ = device_tx.shutdown().await;
    match ended {
        Ended::Closed => Ok(()),
        other => Err(other),
    }
}

/// Reads one complete packet, refusing anything over the size limit before reading it all.
async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    limits: &super::GateLimits,
) -> Result<Packet, Ended> {
    loop {
        match check(buf.iter(), limits.max_packet_bytes) {
            Ok(_) => return Packet::read(buf, limits.max_packet_bytes).map_err(Ended::Malformed),
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(Ended::Malformed(e)),
        }
        buf.reserve(READ_CHUNK);
        if stream.read_buf(buf).await? == 0 {
            return Err(Ended::Closed);
        }
    }
}

/// The device's CONNECT with the gate's credentials in place of whatever it sent, or the
/// CONNACK code and reason to refuse it with.
fn check_connect(
    packet: Packet,
    identity: &DeviceIdentity,
    secret: &str,
) -> Result<Connect, (ConnectReturnCode, &'static str)> {
    let Packet::Connect(mut connect) = packet else {
        return Err((
            ConnectReturnCode::RefusedProtocolVersion,
            "first packet is not CONNECT",
        ));
    };
    if connect.client_id != identity.device_id.as_str() {
        return Err((
            ConnectReturnCode::BadClientId,
            "client id is not the certificate's device id",
        ));
    }
    if let Some(will) = &connect.last_will
        && will.topic != up_topic(identity)
    {
        return Err((
            ConnectReturnCode::NotAuthorized,
            "last will outside the device's up topic",
        ));
    }
    connect.login = Some(Login::new(identity.device_id.as_str(), secret));
    Ok(connect)
}

/// Copies the device's packets to the broker, checking each; returns on the first violation.
async fn relay_up<R, W>(
    device: &mut R,
    broker: &mut W,
    mut buf: BytesMut,
    identity: &DeviceIdentity,
    limits: &super::GateLimits,
    rates: [&UplinkRate; 2],
) -> Result<(), Ended>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let up = up_topic(identity);
    let down = format!("d/{}/down", identity.device_id);
    let mut out = BytesMut::new();
    loop {
        // Everything complete in the buffer goes to the broker in one write.
        loop {
            let header = match check(buf.iter(), limits.max_packet_bytes) {
                Ok(header) => header,
                Err(mqttbytes::Error::InsufficientBytes(_)) => break,
                Err(e) => return Err(Ended::Malformed(e)),
            };
            let raw = buf.split_to(header.frame_length());
            let packet = Packet::read(&mut raw.clone(), limits.max_packet_bytes)
                .map_err(Ended::Malformed)?;
            allowed(&packet, &up, &down)?;
            if matches!(packet, Packet::Publish(_)) {
                // Waiting here stops reading this socket: the device feels TCP back-pressure.
                for rate in rates {
                    rate.until_ready().await;
                }
            }
            out.extend_from_slice(&raw);
            if matches!(packet, Packet::Disconnect) {
                broker.write_all(&out).await.map_err(Ended::Broker)?;
                return Ok(());
            }
        }
        if !out.is_empty() {
            broker.write_all(&out).await.map_err(Ended::Broker)?;
            out.clear();
        }
        // A burst may have grown the buffers; an idle device should not keep them.
        if buf.is_empty() && buf.capacity() > 4 * READ_CHUNK {
            buf = BytesMut::new();
        }
        if out.capacity() > 4 * READ_CHUNK {
            out = BytesMut::new();
        }
        buf.reserve(READ_CHUNK);
        if device.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// The rule for each packet a device sends.
fn allowed(packet: &Packet, up: &str, down: &str) -> Result<(), Ended> {
    let violation = |what: String| Err(Ended::Violation(what));
    // MQTT 3.1.1 forbids packet id 0 where one is required; rumqttd accepts it, others don't.
    let zero_id = match packet {
        Packet::Publish(p) => p.qos != QoS::AtMostOnce && p.pkid == 0,
        Packet::Subscribe(s) => s.pkid == 0,
        Packet::Unsubscribe(u) => u.pkid == 0,
        _ => false,
    };
    if zero_id {
        return violation("packet id 0".into());
    }
    match packet {
        Packet::Publish(publish) if publish.topic != up => {
            violation(format!("publish to {:?}", publish.topic))
        }
        Packet::Subscribe(subscribe) => match subscribe.filters.iter().find(|f| f.path != down) {
            Some(filter) => violation(format!("subscribe to {:?}", filter.path)),
            None => Ok(()),
        },
        Packet::Publish(_)
        | Packet::PubAck(_)
        | Packet::PubRec(_)
        | Packet::PubRel(_)
        | Packet::PubComp(_)
        | Packet::Unsubscribe(_)
        | Packet::PingReq
        | Packet::Disconnect => Ok(()),
        Packet::Connect(_)
        | Packet::ConnAck(_)
        | Packet::SubAck(_)
        | Packet::UnsubAck(_)
        | Packet::PingResp => violation(format!("{packet:?} from a device")),
    }
}

fn up_topic(identity: &DeviceIdentity) -> String {
    format!("d/{}/up", identity.device_id)
}
