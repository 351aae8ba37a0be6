//! A device for tests: real TLS with a real bundle, MQTT packets written by hand (rumqttc's
//! codec) so a test can send exactly what a misbehaving device would.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{ConnAck, Connect, Packet, Publish, Subscribe};
use rumqttc::mqttbytes::{self, QoS};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A client TLS config that trusts the gateway CA in `bundle/ca.pem` and presents the
/// bundle's device certificate (or none).
pub(crate) fn tls_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            builder
                .with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// The config for a device bundle directory.
pub(crate) fn bundle_tls(bundle: &Path) -> Arc<rustls::ClientConfig> {
    tls_config(
        &bundle.join("ca.pem"),
        Some((&bundle.join("device.pem"), &bundle.join("device.key"))),
    )
}

/// One raw MQTT connection over TLS.
pub(crate) struct RawDevice {
    stream: TlsStream<TcpStream>,
    buf: BytesMut,
}

impl RawDevice {
    /// TCP + TLS handshake. With TLS 1.3 a refused client certificate only shows on the first
    /// read, so callers check [`RawDevice::closed_within`] or the CONNACK.
    pub(crate) async fn tls(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<RawDevice> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").unwrap();
        let stream = TlsConnector::from(config).connect(name, tcp).await?;
        Ok(RawDevice {
            stream,
            buf: BytesMut::new(),
        })
    }

    /// The TLS stream, for callers that drive the protocol themselves (benchmarks).
    pub(crate) fn into_stream(self) -> TlsStream<TcpStream> {
        self.stream
    }

    pub(crate) async fn send(&mut self, packet: Packet) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        packet.write(&mut out, usize::MAX).unwrap();
        self.send_raw(&out).await
    }

    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// The next packet within `wait`; `Ok(None)` on timeout, `Err` once the gate closed.
    pub(crate) async fn recv(&mut self, wait: Duration) -> Result<Option<Packet>, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match Packet::read(&mut self.buf, 1 << 20) {
                Ok(packet) => return Ok(Some(packet)),
                Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => return Err(format!("bad packet from the gate: {e}")),
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => return Err("closed".into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.to_string()),
            }
        }
    }

    /// True when the gate closes the connection within `wait` (packets before that are
    /// skipped).
    pub(crate) async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Err(_) => return true,
                Ok(None) => return false,
                Ok(Some(_)) => {}
            }
        }
    }

    /// Sends CONNECT with `client_id` and returns the CONNACK, or `None` if the connection
    /// closed first.
    pub(crate) async fn mqtt_connect(&mut self, client_id: &str) -> Option<ConnAck> {
        let mut connect = Connect::new(client_id);
        connect.keep_alive = 30;
        self.mqtt_connect_with(connect).await
    }

    /// Sends `connect` (keep-alive, last will as the test wants) and returns the CONNACK, or
    /// `None` if the connection closed first.
    pub(crate) async fn mqtt_connect_with(&mut self, connect: Connect) -> Option<ConnAck> {
        self.send(Packet::Connect(connect)).await.ok()?;
        match self.recv(Duration::from_secs(5)).await {
            Ok(Some(Packet::ConnAck(ack))) => Some(ack),
            _ => None,
        }
    }

    /// Subscribes and waits for the SUBACK.
    pub(crate) async fn subscribe(&mut self, filter: &str) -> Result<(), String> {
        let mut subscribe = Subscribe::new(filter, QoS::AtLeastOnce);
        subscribe.pkid = 1; // 0 is not a valid packet id (Mosquitto disconnects on it)
        self.send(Packet::Subscribe(subscribe))
            .await
            .map_err(|e| e.to_string())?;
        match self.recv(Duration::from_secs(5)).await? {
            Some(Packet::SubAck(_)) => Ok(()),
            other => Err(format!("expected SUBACK, got {other:?}")),
        }
    }

    /// Publishes at QoS 1 and waits for the PUBACK.
    pub(crate) async fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), String> {
        let mut publish = Publish::new(topic, QoS::AtLeastOnce, payload.to_vec());
        publish.pkid = 1;
        self.send(Packet::Publish(publish))
            .await
            .map_err(|e| e.to_string())?;
        match self.recv(Duration::from_secs(5)).await? {
            Some(Packet::PubAck(_)) => Ok(()),
            other => Err(format!("expected PUBACK, got {other:?}")),
        }
    }
}

/// A device connected with its own id as client id; panics if the gate refuses it.
pub(crate) async fn connected(addr: SocketAddr, bundle: &Path, id: &str) -> RawDevice {
    let mut device = RawDevice::tls(addr, bundle_tls(bundle)).await.unwrap();
    let ack = device.mqtt_connect(id).await.expect("CONNACK");
    assert_eq!(ack.code, rumqttc::mqttbytes::v4::ConnectReturnCode::Success);
    device
}

/// A device connected with `connect`; panics if the gate refuses it.
pub(crate) async fn connected_with(addr: SocketAddr, bundle: &Path, connect: Connect) -> RawDevice {
    let mut device = RawDevice::tls(addr, bundle_tls(bundle)).await.unwrap();
    let ack = device.mqtt_connect_with(connect).await.expect("CONNACK");
    assert_eq!(ack.code, rumqttc::mqttbytes::v4::ConnectReturnCode::Success);
    device
}
