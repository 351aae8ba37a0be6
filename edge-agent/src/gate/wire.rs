//! The byte side of one MQTT connection, shared by device and integration sessions: reading
//! into a buffer that starts small, checking each packet strictly (see [`super::strict`]) and
//! parsing it under the size limit, and writing replies in one go under a timeout.

use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::{self, v4::Packet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::session::Ended;
use super::strict;

/// How much is read from a socket at a time. A gateway holds thousands of mostly idle
/// connections, so per-connection buffers start small and grow only under load.
pub(super) const READ_CHUNK: usize = 1024;

/// How long a write to the client may take: a client that stops reading is disconnected
/// instead of holding its session (and what is queued for it) forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first packet in `buf`, taken out of it once it is complete and conforms to MQTT 3.1.1.
pub(super) fn parse(buf: &mut BytesMut, max_packet: usize) -> Result<Option<Packet>, Ended> {
    if let Some(frame) = strict::frame(buf, max_packet) {
        strict::check(frame).map_err(Ended::Strict)?;
    }
    match Packet::read(buf, max_packet) {
        Ok(packet) => Ok(Some(packet)),
        Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(e) => Err(Ended::Malformed(e)),
    }
}

/// A connection's stream and buffers.
pub(super) struct Wire<S> {
    pub(super) stream: S,
    /// Bytes read from the client and not yet parsed.
    pub(super) buf: BytesMut,
    /// Bytes to write to the client.
    pub(super) out: BytesMut,
    /// Largest packet the client may send (its "remaining length").
    pub(super) max_packet: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    /// Reads what the client sent next. Cancel-safe: in a `select!`, a read that loses the
    /// race has consumed nothing.
    pub(super) async fn read(&mut self) -> Result<(), Ended> {
        // A burst may have grown the read buffer; an idle client should not keep it.
        if self.buf.is_empty() && self.buf.capacity() > 4 * READ_CHUNK {
            self.buf = BytesMut::new();
        }
        self.buf.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(Ended::Closed),
            Ok(_) => Ok(()),
            Err(e) => Err(Ended::Io(e)),
        }
    }

    /// The next complete packet in the read buffer, if there is one.
    pub(super) fn next_packet(&mut self) -> Result<Option<Packet>, Ended> {
        parse(&mut self.buf, self.max_packet)
    }

    /// Adds `packet` to what [`flush`](Wire::flush) writes next.
    pub(super) fn reply(&mut self, packet: Packet) -> Result<(), Ended> {
        packet
            .write(&mut self.out, usize::MAX)
            .map(drop)
            .map_err(Ended::Encode)
    }

    /// Writes everything queued by [`reply`](Wire::reply).
    pub(super) async fn flush(&mut self) -> Result<(), Ended> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written = timeout(WRITE_TIMEOUT, async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Ended::Io(e)),
            Err(_) => return Err(Ended::WriteTimeout),
        }
        if self.out.capacity() > 4 * READ_CHUNK {
            self.out = BytesMut::new();
        } else {
            self.out.clear();
        }
        Ok(())
    }
}
