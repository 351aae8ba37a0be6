//! The retained messages under `hallwatch/`: the newest payload per topic, so that an
//! integration that subscribes gets the current state at once (rumqttd's local links can
//! neither publish nor receive retained messages, so retention is the gate's).
//!
//! Bounds: `hallwatch/status` is always kept; every other topic (one per alert) counts
//! towards [`MAX_TOPICS`]. Past it, the alert closed longest ago is forgotten first, and only
//! when none is closed the one updated longest ago. A closed alert is also forgotten
//! [`CLOSED_KEPT`] after it closed. A forgotten topic is *cleared*: its subscribers get a
//! zero-length message on it (the MQTT convention for "no retained message here any more"), so
//! a client that mirrors the retained state can drop it too. A zero-length payload from the
//! agent clears its topic the same way.
//!
//! Pure: time comes in as an argument, nothing here does I/O.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::integration::{ALERTS_PREFIX, STATUS_TOPIC, filter_matches};

/// Most topics retained besides `hallwatch/status`.
pub(super) const MAX_TOPICS: usize = 1_000;

/// How long a closed alert stays retained after it closed.
pub(super) const CLOSED_KEPT: Duration = Duration::from_secs(60 * 60);

/// A message on a `hallwatch/` topic, shared by the store and every queue it is in.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Message {
    pub(super) topic: String,
    pub(super) payload: Bytes,
}

/// The retained messages.
#[derive(Debug, Default)]
pub(super) struct Retained {
    status: Option<Arc<Message>>,
    topics: HashMap<String, Entry>,
    /// Increases with every update; orders the topics by when they last changed.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    message: Arc<Message>,
    updated: u64,
    /// When the gate first saw the alert closed; `None` while it is open.
    closed_since: Option<Instant>,
}

impl Retained {
    /// Keeps `message` as its topic's retained message (or clears the topic when the payload
    /// is empty). Returns the topics forgotten to stay within [`MAX_TOPICS`].
    pub(super) fn put(&mut self, message: &Arc<Message>, now: Instant) -> Vec<String> {
        if message.topic == STATUS_TOPIC {
            self.status = (!message.payload.is_empty()).then(|| Arc::clone(message));
            return Vec::new();
        }
        if message.payload.is_empty() {
            self.topics.remove(&message.topic);
            return Vec::new();
        }
        self.clock += 1;
        let closed = is_closed_alert(message);
        let closed_since = match self.topics.get(&message.topic) {
            Some(Entry {
                closed_since: Some(since),
                ..
            }) if closed => Some(*since),
            _ => closed.then_some(now),
        };
        self.topics.insert(
            message.topic.clone(),
            Entry {
                message: Arc::clone(message),
                updated: self.clock,
                closed_since,
            },
        );
        let mut forgotten = Vec::new();
        while self.topics.len() > MAX_TOPICS {
            let Some(victim) = self.victim() else { break };
            if self.topics[&victim].closed_since.is_none() {
                tracing::warn!(topic = %victim, "more than {MAX_TOPICS} open alerts; no longer retaining the oldest");
            }
            self.topics.remove(&victim);
            forgotten.push(victim);
        }
        forgotten
    }

    /// Forgets the alerts closed at least [`CLOSED_KEPT`] before `now`; returns their topics.
    pub(super) fn sweep(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .topics
            .iter()
            .filter(|(_, e)| {
                e.closed_since
                    .is_some_and(|t| now.duration_since(t) >= CLOSED_KEPT)
            })
            .map(|(topic, _)| topic.clone())
            .collect();
        for topic in &expired {
            self.topics.remove(topic);
        }
        expired
    }

    /// The retained messages `filter` matches: the status first, then the rest in the order
    /// they last changed.
    pub(super) fn matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let mut found: Vec<(u64, &Arc<Message>)> = self
            .topics
            .values()
            .filter(|e| filter_matches(filter, &e.message.topic))
            .map(|e| (e.updated, &e.message))
            .collect();
        found.sort_unstable_by_key(|(updated, _)| *updated);
        self.status
            .iter()
            .filter(|s| filter_matches(filter, &s.topic))
            .chain(found.into_iter().map(|(_, m)| m))
            .cloned()
            .collect()
    }

    /// How many topics are retained, the status included.
    pub(super) fn len(&self) -> usize {
        self.topics.len() + usize::from(self.status.is_some())
    }

    /// The topic to forget first: closed longest ago, else updated longest ago.
    fn victim(&self) -> Option<String> {
        let closed = self
            .topics
            .iter()
            .filter_map(|(topic, e)| e.closed_since.map(|since| (since, e.updated, topic)))
            .min();
        match closed {
            Some((_, _, topic)) => Some(topic.clone()),
            None => self
                .topics
                .iter()
                .min_by_key(|(_, e)| e.updated)
                .map(|(topic, _)| topic.clone()),
        }
    }
}

/// Whether `message` is an alert (`hallwatch/alerts/…`) whose JSON says it is closed.
fn is_closed_alert(message: &Message) -> bool {
    #[derive(serde::Deserialize)]
    struct Closed {
        closed_at: Option<i64>,
    }
    message.topic.starts_with(ALERTS_PREFIX)
        && serde_json::from_slice::<Closed>(&message.payload).is_ok_and(|c| c.closed_at.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: usize, closed: bool) -> Arc<Message> {
        let closed_at = if closed { "2" } else { "null" };
        Arc::new(Message {
            topic: format!("{ALERTS_PREFIX}{id}"),
            payload: Bytes::from(format!(r#"{{"id":"{id}","closed_at":{closed_at}}}"#)),
        })
    }

    fn status(text: &'static str) -> Arc<Message> {
        Arc::new(Message {
            topic: STATUS_TOPIC.into(),
            payload: Bytes::from_static(text.as_bytes()),
        })
    }

    fn topics(messages: &[Arc<Message>]) -> Vec<&str> {
        messages.iter().map(|m| m.topic.as_str()).collect()
    }

    #[test]
    fn the_newest_payload_per_topic_is_kept_status_first() {
        let now = Instant::now();
        let mut r = Retained::default();
        r.put(&alert(1, false), now);
        r.put(&status("a"), now);
        r.put(&alert(2, false), now);
        r.put(&alert(1, true), now);
        r.put(&status("b"), now);
        let all = r.matching("hallwatch/#");
        assert_eq!(
            topics(&all),
            [
                "hallwatch/status",
                "hallwatch/alerts/2",
                "hallwatch/alerts/1"
            ]
        );
        assert_eq!(all[0].payload, "b");
        assert!(all[2].payload.ends_with(b"\"closed_at\":2}"));
        assert_eq!(
            topics(&r.matching("hallwatch/status")),
            ["hallwatch/status"]
        );
        assert_eq!(r.matching("hallwatch/alerts/+").len(), 2);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn an_empty_payload_clears_its_topic() {
        let now = Instant::now();
        let mut r = Retained::default();
        r.put(&alert(1, false), now);
        r.put(&status("a"), now);
        for topic in ["hallwatch/alerts/1", STATUS_TOPIC] {
            let empty = Arc::new(Message {
                topic: topic.into(),
                payload: Bytes::new(),
            });
            assert!(r.put(&empty, now).is_empty());
        }
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn over_the_bound_closed_alerts_go_first_and_the_status_stays() {
        let now = Instant::now();
        let mut r = Retained::default();
        r.put(&status("s"), now);
        for id in 0..MAX_TOPICS {
            // Every tenth alert is closed, the later ones later.
            let at = now + Duration::from_secs(id as u64);
            assert!(r.put(&alert(id, id % 10 == 0), at).is_empty());
        }
        let later = now + Duration::from_secs(5_000);
        let forgotten = r.put(&alert(5_000, false), later);
        assert_eq!(forgotten, ["hallwatch/alerts/0"], "the alert closed first");
        let forgotten = r.put(&alert(5_001, false), later);
        assert_eq!(forgotten, ["hallwatch/alerts/10"]);
        assert_eq!(r.len(), MAX_TOPICS + 1, "the status is kept on top");
        // With no closed alert left, the one updated longest ago goes.
        for id in (20..MAX_TOPICS).step_by(10) {
            r.put(&alert(id, false), later);
        }
        let forgotten = r.put(&alert(5_002, false), later);
        assert_eq!(forgotten, ["hallwatch/alerts/1"]);
        assert!(r.matching(STATUS_TOPIC).len() == 1);
    }

    #[test]
    fn closed_alerts_are_forgotten_an_hour_after_they_closed() {
        let now = Instant::now();
        let mut r = Retained::default();
        r.put(&alert(1, true), now);
        r.put(&alert(2, false), now);
        // A later change of a closed alert does not restart its hour.
        r.put(&alert(1, true), now + Duration::from_secs(600));
        assert!(
            r.sweep(now + CLOSED_KEPT - Duration::from_secs(1))
                .is_empty()
        );
        assert_eq!(r.sweep(now + CLOSED_KEPT), ["hallwatch/alerts/1"]);
        assert_eq!(topics(&r.matching("hallwatch/#")), ["hallwatch/alerts/2"]);
        assert!(
            r.sweep(now + 10 * CLOSED_KEPT).is_empty(),
            "open alerts stay"
        );
    }
}
