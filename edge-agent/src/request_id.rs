//! Ids that follow one request or connection through the logs: an accepted incoming
//! `X-Request-Id` (see [`shared::request_id`]) or a new UUIDv7.

pub(crate) use shared::request_id::HEADER;

/// A new id (a UUIDv7: time-ordered, unique without coordination).
pub(crate) fn new() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The incoming id if acceptable, else a new one.
pub(crate) fn accept_or_new(incoming: Option<&str>) -> String {
    incoming
        .and_then(shared::request_id::accept)
        .map_or_else(new, str::to_owned)
}
