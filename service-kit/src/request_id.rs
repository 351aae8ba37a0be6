//! Ids that follow one request or connection through the logs: an accepted incoming
//! `X-Request-Id` (see [`shared::request_id`], which says which are acceptable) or a new
//! UUIDv7.

pub use shared::request_id::HEADER;

/// A new id (a UUIDv7: time-ordered, unique without coordination).
pub fn new() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The incoming id if acceptable, else a new one.
pub fn accept_or_new(incoming: Option<&str>) -> String {
    incoming
        .and_then(shared::request_id::accept)
        .map_or_else(new, str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acceptable_id_is_kept_and_any_other_replaced_by_a_uuid() {
        assert_eq!(accept_or_new(Some("gw-1:42")), "gw-1:42");
        for incoming in [None, Some(""), Some("a b"), Some("x\ny")] {
            let made = accept_or_new(incoming);
            let uuid = uuid::Uuid::parse_str(&made).unwrap();
            assert_eq!(uuid.get_version_num(), 7, "{incoming:?}");
        }
        assert_ne!(new(), new());
    }
}
