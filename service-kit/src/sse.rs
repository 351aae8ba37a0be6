//! Resuming a Server-Sent Events stream: the `Last-Event-ID` header a browser's
//! `EventSource` sends when it reconnects, naming the last event id it received.

use axum::http::HeaderMap;

/// A `Last-Event-ID` that is not an event id (ids are non-negative integers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Last-Event-ID is not an event id")]
pub struct BadLastEventId;

/// The id to resume after: `None` without the header (a new stream), the id when it is a
/// non-negative integer (surrounding blanks allowed), else [`BadLastEventId`].
pub fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, BadLastEventId> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|id| *id >= 0)
        .map(Some)
        .ok_or(BadLastEventId)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("last-event-id", HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn no_header_is_a_new_stream() {
        assert_eq!(last_event_id(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn a_non_negative_integer_is_resumed_after() {
        assert_eq!(last_event_id(&with(b"0")), Ok(Some(0)));
        assert_eq!(last_event_id(&with(b"42")), Ok(Some(42)));
        assert_eq!(last_event_id(&with(b" 7 ")), Ok(Some(7)));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            &b"soon"[..],
            b"-1",
            b"1.5",
            b"",
            b"99999999999999999999",
            b"\xff",
        ] {
            assert_eq!(
                last_event_id(&with(bad)),
                Err(BadLastEventId),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
