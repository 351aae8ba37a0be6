//! Request ids: the `X-Request-Id` both services accept, echo and log, so one request's lines
//! can be followed from the gateway's sync loop through the cloud and back.
//!
//! An incoming id is taken as is only when it is short and plain (letters, digits and
//! `-_.:`, at most [`MAX_LEN`] bytes), so a client cannot push control characters or a page of
//! text into every log line; otherwise the service makes its own. Ids that services make are
//! UUIDv7s (time-ordered), made where the clock is, not here.

/// The header's name (lower case, as HTTP/2 and `http::HeaderName` want it).
pub const HEADER: &str = "x-request-id";

/// The longest incoming id accepted.
pub const MAX_LEN: usize = 64;

/// `id` if it is acceptable as a request id, else `None`.
pub fn accept(id: &str) -> Option<&str> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':');
    (!id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(plain)).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_short_ids_are_accepted_others_refused() {
        assert_eq!(accept("abc-123_x.y:z"), Some("abc-123_x.y:z"));
        assert_eq!(
            accept("01a1fdef-8820-72a3-8d96-801a93dfdfa7"),
            Some("01a1fdef-8820-72a3-8d96-801a93dfdfa7")
        );
        assert_eq!(accept(&"a".repeat(MAX_LEN)).map(str::len), Some(MAX_LEN));
        for bad in ["", "a b", "a\nb", "é", "a/b", "{\"x\":1}"] {
            assert_eq!(accept(bad), None, "{bad:?}");
        }
        assert_eq!(accept(&"a".repeat(MAX_LEN + 1)), None);
    }
}
