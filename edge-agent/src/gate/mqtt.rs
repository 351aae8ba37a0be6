//! The MQTT 3.1.1 server side of one connected device, after its CONNECT was accepted.
//!
//! The gate answers the device itself; rumqttd only ever sees the device's uplinks, through
//! the gate's local link. What a device may send:
//! - PUBLISH at QoS 0 or 1 to its own `d/{id}/up`. A QoS 1 publish is acknowledged once the
//!   uplink queue has taken it (waiting for room is the device's back-pressure). QoS 2 is not
//!   supported and ends the connection: our devices never use it, and its four-packet handshake
//!   would need per-device state for nothing. The retain flag is ignored (nothing is retained).
//! - SUBSCRIBE to exactly its own `d/{id}/down`, granted at QoS 0 (downlinks are QoS 0 all the
//!   way from the agent); UNSUBSCRIBE; PINGREQ; DISCONNECT.
//!
//! Anything else, a packet id 0 where one is required, a malformed (see [`super::strict`]) or
//! oversized packet ends the connection. So does silence for 1.5 × the device's keep-alive; a device that asks for no
//! keep-alive (0) is given [`MAX_SILENCE`], so that a dead device cannot hold its connection.
//! Downlinks the registry hands over are written as QoS 0 PUBLISH packets while the device is
//! subscribed and dropped otherwise.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Packet, PubAck, Publish, SubAck, SubscribeReasonCode, UnsubAck};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::limits::UplinkRate;
use super::session::Ended;
use super::wire::Wire;
use crate::broker::{UpTopic, UplinkPublisher};

/// The longest a client may stay silent when its CONNECT asked for no keep-alive.
pub(super) const MAX_SILENCE: Duration = Duration::from_secs(300);

/// Downlinks written to the device in one go.
const DOWNLINK_BATCH: usize = 8;

/// How long a device may stay silent: 1.5 × `keep_alive` seconds (MQTT 3.1.1 §3.1.2.10), or
/// [`MAX_SILENCE`] for 0.
pub(super) fn silence_allowed(keep_alive: u16) -> Duration {
    match keep_alive {
        0 => MAX_SILENCE,
        secs => Duration::from_millis(u64::from(secs) * 1_500),
    }
}

/// One device's session. The caller owns the end conditions that come from outside
/// (replacement, revocation, shutdown) and runs [`Session::serve`] against them.
pub(super) struct Session<'a, S> {
    pub(super) wire: Wire<S>,
    pub(super) up: UpTopic,
    pub(super) down: String,
    /// The device's own rate and the gate's total.
    pub(super) rates: [&'a UplinkRate; 2],
    pub(super) uplink: &'a UplinkPublisher,
    pub(super) downlinks: mpsc::Receiver<Bytes>,
    /// Whether the device is subscribed to its `down` topic.
    pub(super) subscribed: bool,
    pub(super) silence: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    /// Serves the device until the session ends, and says why. Whatever is in `out` already
    /// (the CONNACK) goes first.
    pub(super) async fn serve(&mut self) -> Ended {
        if let Err(ended) = self.wire.flush().await {
            return ended;
        }
        let mut heard = Instant::now();
        loop {
            let step = tokio::select! {
                read = self.wire.read() => match read {
                    Ok(()) => {
                        heard = Instant::now();
                        self.handle_buffered().await
                    }
                    Err(ended) => Err(ended),
                },
                Some(frame) = self.downlinks.recv() => self.write_downlinks(frame).await,
                () = tokio::time::sleep_until(heard + self.silence) => {
                    Err(Ended::KeepAlive(self.silence))
                }
            };
            if let Err(ended) = step {
                return ended;
            }
        }
    }

    /// Handles every complete packet in the read buffer, then writes the replies in one go.
    async fn handle_buffered(&mut self) -> Result<(), Ended> {
        let mut result = Ok(());
        while let Some(packet) = self.wire.next_packet()? {
            if let Err(ended) = self.handle(packet).await {
                result = Err(ended);
                break;
            }
        }
        // Replies to what came before a DISCONNECT or a violation still go out.
        self.wire.flush().await?;
        result
    }

    async fn handle(&mut self, packet: Packet) -> Result<(), Ended> {
        let violation = |what: String| Err(Ended::Violation(what));
        // MQTT 3.1.1 forbids packet id 0 where one is required.
        let zero_id = match &packet {
            Packet::Publish(p) => p.qos != QoS::AtMostOnce && p.pkid == 0,
            Packet::Subscribe(s) => s.pkid == 0,
            Packet::Unsubscribe(u) => u.pkid == 0,
            _ => false,
        };
        if zero_id {
            return violation("packet id 0".into());
        }
        match packet {
            Packet::Publish(publish) => {
                if publish.topic.as_bytes() != self.up.as_bytes() {
                    return violation(format!("publish to {:?}", publish.topic));
                }
                if publish.qos == QoS::ExactlyOnce {
                    return violation("QoS 2 publish (not supported)".into());
                }
                // Waiting here stops reading this socket: the device feels TCP back-pressure.
                for rate in self.rates {
                    rate.until_ready().await;
                }
                // Copied: a slice would keep the whole read buffer alive in the broker's log.
                let payload = Bytes::copy_from_slice(&publish.payload);
                self.uplink
                    .publish(&self.up, payload)
                    .await
                    .map_err(|_| Ended::Broker)?;
                if publish.qos == QoS::AtLeastOnce {
                    self.wire.reply(Packet::PubAck(PubAck::new(publish.pkid)))?;
                }
                Ok(())
            }
            Packet::Subscribe(subscribe) => {
                if let Some(f) = subscribe.filters.iter().find(|f| f.path != self.down) {
                    return violation(format!("subscribe to {:?}", f.path));
                }
                self.subscribed = true;
                let granted =
                    vec![SubscribeReasonCode::Success(QoS::AtMostOnce); subscribe.filters.len()];
                self.wire
                    .reply(Packet::SubAck(SubAck::new(subscribe.pkid, granted)))
            }
            Packet::Unsubscribe(unsubscribe) => {
                if unsubscribe.topics.contains(&self.down) {
                    self.subscribed = false;
                }
                self.wire
                    .reply(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)))
            }
            Packet::PingReq => self.wire.reply(Packet::PingResp),
            Packet::Disconnect => Err(Ended::Disconnected),
            other => violation(format!("{other:?} from a device")),
        }
    }

    /// Writes `first` and whatever else is queued (up to a batch) as QoS 0 publishes, or drops
    /// them when the device is not subscribed.
    async fn write_downlinks(&mut self, first: Bytes) -> Result<(), Ended> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(frame) = next {
            if self.subscribed {
                let publish = Publish::from_bytes(self.down.as_str(), QoS::AtMostOnce, frame);
                self.wire.reply(Packet::Publish(publish))?;
            }
            written += 1;
            next = if written < DOWNLINK_BATCH {
                self.downlinks.try_recv().ok()
            } else {
                None
            };
        }
        self.wire.flush().await
    }
}
