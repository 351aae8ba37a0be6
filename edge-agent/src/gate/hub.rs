//! The integrations' side of the gate: the retained messages, the connected integrations and
//! what is queued for each.
//!
//! The gate link's receiving thread hands every `hallwatch/…` message to [`Hub::publish`],
//! which never blocks: it updates the retained store and appends the message to the queue of
//! every session with a matching subscription. Each queue is bounded ([`QUEUE_MESSAGES`],
//! [`QUEUE_BYTES`]); a session that falls behind loses its *oldest* queued messages, so a slow
//! integration never holds up the gate, the devices or the other integrations. Subscribing
//! queues the matching retained messages (retain flag set) under the same lock as publishing,
//! so a subscriber sees each topic's retained state and then every later change, in order.
//!
//! One session per integration: a newer connection with the same certificate identity replaces
//! the older one, as for devices.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::retained::{MAX_TOPICS, Message, Retained};
use super::tls::RevokedSerials;
use crate::integration::{IntegrationId, filter_matches};

/// Most messages queued for one integration: room for every retained message at once, plus a
/// burst of changes.
pub(super) const QUEUE_MESSAGES: usize = 2 * MAX_TOPICS + 48;
/// Most payload bytes queued for one integration (the status lists every open alert, so it can
/// be a few tens of KiB).
pub(super) const QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// One message to write to an integration.
#[derive(Debug, Clone)]
pub(super) struct Outgoing {
    pub(super) message: Arc<Message>,
    pub(super) qos: QoS,
    /// Set for retained messages sent because of a new subscription (MQTT 3.1.1 §3.3.1.3).
    pub(super) retain: bool,
}

#[derive(Debug, Default)]
pub(super) struct Hub {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    retained: Retained,
    sessions: HashMap<u64, Outbox>,
    by_integration: HashMap<IntegrationId, u64>,
}

#[derive(Debug)]
struct Outbox {
    integration: IntegrationId,
    serial: Vec<u8>,
    end: CancellationToken,
    notify: Arc<Notify>,
    /// Subscribed filters with the QoS granted for each.
    filters: Vec<(String, QoS)>,
    queue: VecDeque<Outgoing>,
    queued_bytes: usize,
    dropped: u64,
}

/// Removes its session from the hub when the session ends.
#[derive(Debug)]
pub(super) struct Registration<'a> {
    hub: &'a Hub,
    pub(super) id: u64,
    /// Cancelled when the session must end: replaced, revoked.
    pub(super) end: CancellationToken,
    /// Woken when something is queued for the session.
    pub(super) notify: Arc<Notify>,
}

impl Hub {
    /// Called for every message the agent publishes under `hallwatch/`. Never blocks for
    /// longer than the hub's lock.
    pub(super) fn publish(&self, topic: String, payload: Bytes) {
        let message = Arc::new(Message { topic, payload });
        let mut inner = self.lock();
        let forgotten = inner.retained.put(&message, Instant::now());
        inner.fan_out(&message);
        for topic in forgotten {
            inner.clear(topic);
        }
    }

    /// Forgets alerts that closed long enough ago (see [`super::retained`]) and tells their
    /// subscribers.
    pub(super) fn sweep(&self, now: Instant) {
        let mut inner = self.lock();
        for topic in inner.retained.sweep(now) {
            inner.clear(topic);
        }
    }

    /// Records a new session of `integration`, ending an older one.
    pub(super) fn register(
        &self,
        integration: &IntegrationId,
        serial: Vec<u8>,
    ) -> Registration<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let end = CancellationToken::new();
        let notify = Arc::new(Notify::new());
        let outbox = Outbox {
            integration: integration.clone(),
            serial,
            end: end.clone(),
            notify: Arc::clone(&notify),
            filters: Vec::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            dropped: 0,
        };
        let mut inner = self.lock();
        inner.sessions.insert(id, outbox);
        if let Some(old) = inner.by_integration.insert(integration.clone(), id)
            && let Some(old) = inner.sessions.get(&old)
        {
            tracing::info!(%integration, "integration reconnected; closing its older connection");
            old.end.cancel();
        }
        Registration {
            hub: self,
            id,
            end,
            notify,
        }
    }

    /// Adds `filters` (already checked, QoS already granted) to session `id` and queues the
    /// retained messages they match, each topic once.
    pub(super) fn subscribe(&self, id: u64, filters: &[(String, QoS)]) {
        let mut inner = self.lock();
        let mut retained: Vec<Outgoing> = Vec::new();
        let mut seen = HashSet::new();
        for (filter, qos) in filters {
            for message in inner.retained.matching(filter) {
                if seen.insert(message.topic.clone()) {
                    retained.push(Outgoing {
                        message,
                        qos: *qos,
                        retain: true,
                    });
                } else if *qos == QoS::AtLeastOnce
                    && let Some(o) = retained
                        .iter_mut()
                        .find(|o| o.message.topic == message.topic)
                {
                    o.qos = QoS::AtLeastOnce;
                }
            }
        }
        let Some(outbox) = inner.sessions.get_mut(&id) else {
            return;
        };
        for (filter, qos) in filters {
            match outbox.filters.iter_mut().find(|(f, _)| f == filter) {
                Some(existing) => existing.1 = *qos,
                None => outbox.filters.push((filter.clone(), *qos)),
            }
        }
        for outgoing in retained {
            outbox.push(outgoing);
        }
    }

    /// Removes `filters` from session `id`. What is queued already is still delivered.
    pub(super) fn unsubscribe(&self, id: u64, filters: &[String]) {
        if let Some(outbox) = self.lock().sessions.get_mut(&id) {
            outbox.filters.retain(|(f, _)| !filters.contains(f));
        }
    }

    /// Up to `max` messages queued for session `id`, oldest first.
    pub(super) fn take(&self, id: u64, max: usize) -> Vec<Outgoing> {
        let mut inner = self.lock();
        let Some(outbox) = inner.sessions.get_mut(&id) else {
            return Vec::new();
        };
        let n = max.min(outbox.queue.len());
        let taken: Vec<Outgoing> = outbox.queue.drain(..n).collect();
        outbox.queued_bytes -= taken.iter().map(|o| o.message.payload.len()).sum::<usize>();
        taken
    }

    /// Ends every session whose certificate is revoked; returns how many.
    pub(super) fn end_revoked(&self, revoked: &RevokedSerials) -> usize {
        let inner = self.lock();
        let mut ended = 0;
        for outbox in inner.sessions.values() {
            if revoked.contains(&outbox.serial) {
                tracing::warn!(integration = %outbox.integration, "certificate revoked; disconnecting");
                outbox.end.cancel();
                ended += 1;
            }
        }
        ended
    }

    /// How many integrations are connected.
    pub(super) fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// How many topics are retained.
    pub(super) fn retained(&self) -> usize {
        self.lock().retained.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every change under the lock leaves `Inner` consistent (entries are inserted and
        // removed whole; a queue's byte count is updated with the queue), so a poisoned hub is
        // still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// Queues `message` for every session subscribed to its topic, at the highest QoS granted
    /// among the matching subscriptions.
    fn fan_out(&mut self, message: &Arc<Message>) {
        for outbox in self.sessions.values_mut() {
            let mut qos = None;
            for (filter, granted) in &outbox.filters {
                if filter_matches(filter, &message.topic) {
                    qos = Some(match qos {
                        Some(QoS::AtLeastOnce) => QoS::AtLeastOnce,
                        _ => *granted,
                    });
                }
            }
            if let Some(qos) = qos {
                outbox.push(Outgoing {
                    message: Arc::clone(message),
                    qos,
                    retain: false,
                });
            }
        }
    }

    /// Tells subscribers that `topic` has no retained message any more: a zero-length message.
    fn clear(&mut self, topic: String) {
        tracing::debug!(%topic, "no longer retained");
        self.fan_out(&Arc::new(Message {
            topic,
            payload: Bytes::new(),
        }));
    }
}

impl Outbox {
    /// Appends `outgoing`, dropping the oldest queued messages while over a bound (the newest
    /// always stays), and wakes the session.
    fn push(&mut self, outgoing: Outgoing) {
        self.queued_bytes += outgoing.message.payload.len();
        self.queue.push_back(outgoing);
        while self.queue.len() > 1
            && (self.queue.len() > QUEUE_MESSAGES || self.queued_bytes > QUEUE_BYTES)
        {
            if let Some(old) = self.queue.pop_front() {
                self.queued_bytes -= old.message.payload.len();
            }
            self.dropped += 1;
            if self.dropped == 1 || self.dropped.is_power_of_two() {
                tracing::warn!(
                    integration = %self.integration,
                    dropped = self.dropped,
                    "integration not keeping up; dropped its oldest queued messages"
                );
            }
        }
        self.notify.notify_one();
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut inner = self.hub.lock();
        if let Some(outbox) = inner.sessions.remove(&self.id)
            && inner.by_integration.get(&outbox.integration) == Some(&self.id)
        {
            inner.by_integration.remove(&outbox.integration);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration(s: &str) -> IntegrationId {
        s.parse().unwrap()
    }

    fn topics(out: &[Outgoing]) -> Vec<(&str, bool)> {
        out.iter()
            .map(|o| (o.message.topic.as_str(), o.retain))
            .collect()
    }

    #[test]
    fn a_subscriber_gets_the_retained_state_then_live_changes_in_order() {
        let hub = Hub::default();
        hub.publish("hallwatch/status".into(), Bytes::from_static(b"s1"));
        hub.publish("hallwatch/alerts/a".into(), Bytes::from_static(b"{}"));
        let session = hub.register(&integration("signage"), vec![1]);
        hub.publish("hallwatch/alerts/b".into(), Bytes::from_static(b"{}"));
        assert!(
            hub.take(session.id, 10).is_empty(),
            "nothing before SUBSCRIBE"
        );
        hub.subscribe(
            session.id,
            &[
                ("hallwatch/alerts/+".into(), QoS::AtMostOnce),
                ("hallwatch/#".into(), QoS::AtLeastOnce),
            ],
        );
        hub.publish("hallwatch/status".into(), Bytes::from_static(b"s2"));
        let out = hub.take(session.id, 10);
        assert_eq!(
            topics(&out),
            [
                ("hallwatch/alerts/a", true),
                ("hallwatch/alerts/b", true),
                ("hallwatch/status", true),
                ("hallwatch/status", false),
            ]
        );
        assert!(
            out.iter().all(|o| o.qos == QoS::AtLeastOnce),
            "the highest grant wins"
        );
        assert_eq!(out[3].message.payload, "s2");
        hub.unsubscribe(session.id, &["hallwatch/#".into()]);
        hub.publish("hallwatch/status".into(), Bytes::from_static(b"s3"));
        hub.publish("hallwatch/alerts/c".into(), Bytes::from_static(b"{}"));
        let out = hub.take(session.id, 10);
        assert_eq!(topics(&out), [("hallwatch/alerts/c", false)]);
        assert_eq!(out[0].qos, QoS::AtMostOnce);
        assert_eq!(hub.len(), 1);
        drop(session);
        assert_eq!(hub.len(), 0);
        assert_eq!(hub.retained(), 4);
    }

    #[test]
    fn a_slow_subscriber_loses_its_oldest_messages() {
        let hub = Hub::default();
        let slow = hub.register(&integration("slow"), vec![1]);
        hub.subscribe(slow.id, &[("hallwatch/#".into(), QoS::AtMostOnce)]);
        for i in 0..QUEUE_MESSAGES + 10 {
            hub.publish("hallwatch/status".into(), Bytes::from(i.to_string()));
        }
        let out = hub.take(slow.id, usize::MAX);
        assert_eq!(out.len(), QUEUE_MESSAGES);
        assert_eq!(out[0].message.payload, "10", "the oldest ten were dropped");
        // Bytes bound: a few large messages push out the older ones.
        let big = Bytes::from(vec![b'x'; QUEUE_BYTES / 2]);
        for _ in 0..3 {
            hub.publish("hallwatch/status".into(), big.clone());
        }
        assert_eq!(hub.take(slow.id, usize::MAX).len(), 2);
    }

    #[test]
    fn a_newer_session_replaces_the_older_and_revocation_ends_sessions() {
        let hub = Hub::default();
        let first = hub.register(&integration("pa"), vec![7]);
        let second = hub.register(&integration("pa"), vec![7]);
        assert!(first.end.is_cancelled());
        drop(first);
        let other = hub.register(&integration("strobes"), vec![8]);
        assert_eq!(hub.len(), 2);
        let revoked: RevokedSerials = [vec![8]].into_iter().collect();
        assert_eq!(hub.end_revoked(&revoked), 1);
        assert!(other.end.is_cancelled() && !second.end.is_cancelled());
    }

    #[test]
    fn forgotten_topics_are_cleared_with_an_empty_message() {
        let hub = Hub::default();
        let session = hub.register(&integration("signage"), vec![1]);
        hub.subscribe(
            session.id,
            &[("hallwatch/alerts/+".into(), QoS::AtMostOnce)],
        );
        hub.publish(
            "hallwatch/alerts/a".into(),
            Bytes::from_static(br#"{"closed_at":5}"#),
        );
        hub.sweep(Instant::now() + super::super::retained::CLOSED_KEPT);
        let out = hub.take(session.id, 10);
        assert_eq!(
            topics(&out),
            [("hallwatch/alerts/a", false), ("hallwatch/alerts/a", false)]
        );
        assert!(out[1].message.payload.is_empty());
        assert_eq!(hub.retained(), 0);
    }
}
