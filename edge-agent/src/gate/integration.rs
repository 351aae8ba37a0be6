//! The MQTT 3.1.1 server side of one connected integration (strobes, PA, signage), after its
//! CONNECT was accepted.
//!
//! An integration reads and never writes. What it may send:
//! - SUBSCRIBE to filters under `hallwatch/` only ([`check_filter`]); QoS 0 is granted as
//!   asked, QoS 1 and 2 are granted QoS 1. The matching retained messages follow the SUBACK
//!   with the retain flag set, then every later change.
//! - UNSUBSCRIBE, PINGREQ, DISCONNECT, and PUBACK for the QoS 1 messages it was sent.
//!
//! Any PUBLISH (to any topic), any other filter, any other packet, a packet id 0 where one is
//! required, a malformed or oversized packet ends the connection, as for a device. So do
//! silence for 1.5 × its keep-alive and, for QoS 1, no PUBACK within [`ACK_WAIT`]: at most
//! [`MAX_INFLIGHT`] QoS 1 messages are unacknowledged at a time, and while the window is full
//! further messages wait in the session's queue in the hub (which drops the oldest when full).
//! Sessions are never persistent, so nothing is redelivered after a reconnect: the retained
//! messages bring a reconnecting integration up to date instead.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Packet, Publish, SubAck, SubscribeReasonCode, UnsubAck};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::hub::Hub;
use super::session::Ended;
use super::wire::Wire;
use crate::integration::check_filter;

/// Most QoS 1 messages sent and not yet acknowledged.
pub(super) const MAX_INFLIGHT: usize = 32;

/// How long a QoS 1 message may stay unacknowledged before the integration is disconnected.
pub(super) const ACK_WAIT: Duration = Duration::from_secs(30);

/// One integration's session; the caller owns the end conditions that come from outside
/// (replacement, revocation, shutdown) and runs [`Session::serve`] against them.
pub(super) struct Session<'a, S> {
    pub(super) wire: Wire<S>,
    pub(super) hub: &'a Hub,
    /// The session's id in the hub.
    pub(super) id: u64,
    /// Woken when the hub queued something for this session.
    pub(super) notify: Arc<Notify>,
    pub(super) silence: Duration,
    /// Packet ids of QoS 1 messages not yet acknowledged, with when they were sent.
    pub(super) inflight: VecDeque<(u16, Instant)>,
    pub(super) next_pkid: u16,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    /// Serves the integration until the session ends, and says why. Whatever is in the wire's
    /// output already (the CONNACK) goes first.
    pub(super) async fn serve(&mut self) -> Ended {
        if let Err(ended) = self.wire.flush().await {
            return ended;
        }
        let mut heard = Instant::now();
        loop {
            if let Err(ended) = self.pump().await {
                return ended;
            }
            let window_open = self.inflight.len() < MAX_INFLIGHT;
            let ack_due = self.inflight.front().map(|(_, sent)| *sent + ACK_WAIT);
            let step = tokio::select! {
                read = self.wire.read() => match read {
                    Ok(()) => {
                        heard = Instant::now();
                        self.handle_buffered().await
                    }
                    Err(ended) => Err(ended),
                },
                () = self.notify.notified(), if window_open => Ok(()),
                () = tokio::time::sleep_until(heard + self.silence) => {
                    Err(Ended::KeepAlive(self.silence))
                }
                () = tokio::time::sleep_until(ack_due.unwrap_or(heard)), if ack_due.is_some() => {
                    Err(Ended::Violation(format!("no PUBACK within {ACK_WAIT:?}")))
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
            if let Err(ended) = self.handle(packet) {
                result = Err(ended);
                break;
            }
        }
        // Replies to what came before a DISCONNECT or a violation still go out.
        self.wire.flush().await?;
        result
    }

    fn handle(&mut self, packet: Packet) -> Result<(), Ended> {
        let violation = |what: String| Err(Ended::Violation(what));
        let zero_id = match &packet {
            Packet::Subscribe(s) => s.pkid == 0,
            Packet::Unsubscribe(u) => u.pkid == 0,
            _ => false,
        };
        if zero_id {
            return violation("packet id 0".into());
        }
        match packet {
            Packet::Publish(publish) => violation(format!(
                "an integration may not publish (to {:?})",
                publish.topic
            )),
            Packet::Subscribe(subscribe) => {
                let mut granted = Vec::with_capacity(subscribe.filters.len());
                for filter in &subscribe.filters {
                    if let Err(e) = check_filter(&filter.path) {
                        return violation(format!("subscribe refused: {e}"));
                    }
                    let qos = match filter.qos {
                        QoS::AtMostOnce => QoS::AtMostOnce,
                        QoS::AtLeastOnce | QoS::ExactlyOnce => QoS::AtLeastOnce,
                    };
                    granted.push((filter.path.clone(), qos));
                }
                // The SUBACK is written before the retained messages, which the next pump
                // sends.
                let codes = granted
                    .iter()
                    .map(|(_, qos)| SubscribeReasonCode::Success(*qos))
                    .collect();
                self.wire
                    .reply(Packet::SubAck(SubAck::new(subscribe.pkid, codes)))?;
                self.hub.subscribe(self.id, &granted);
                Ok(())
            }
            Packet::Unsubscribe(unsubscribe) => {
                self.hub.unsubscribe(self.id, &unsubscribe.topics);
                self.wire
                    .reply(Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)))
            }
            Packet::PubAck(ack) => {
                // A PUBACK for nothing outstanding (a duplicate) changes nothing.
                self.inflight.retain(|(pkid, _)| *pkid != ack.pkid);
                Ok(())
            }
            Packet::PingReq => self.wire.reply(Packet::PingResp),
            Packet::Disconnect => Err(Ended::Disconnected),
            other => violation(format!("{other:?} from an integration")),
        }
    }

    /// Writes what the hub queued for this session while the QoS 1 window has room.
    async fn pump(&mut self) -> Result<(), Ended> {
        loop {
            let room = MAX_INFLIGHT - self.inflight.len();
            if room == 0 {
                return Ok(());
            }
            let batch = self.hub.take(self.id, room);
            if batch.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            for outgoing in batch {
                let mut publish = Publish::from_bytes(
                    outgoing.message.topic.as_str(),
                    outgoing.qos,
                    outgoing.message.payload.clone(),
                );
                publish.retain = outgoing.retain;
                if outgoing.qos == QoS::AtLeastOnce {
                    publish.pkid = self.pkid();
                    self.inflight.push_back((publish.pkid, now));
                }
                self.wire.reply(Packet::Publish(publish))?;
            }
            self.wire.flush().await?;
        }
    }

    /// The next packet id not in flight (never 0).
    fn pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            let pkid = self.next_pkid;
            if !self.inflight.iter().any(|(p, _)| *p == pkid) {
                return pkid;
            }
        }
    }
}
