//! The contract between a school's gateway ("edge") and the cloud service.
//!
//! Everything both sides must agree on lives here: the identifiers they exchange, the alert
//! state machine the gateway runs, the school snapshot it reports and the bytes of the sync
//! protocol. Both `edge-agent` and `cloud-sync` depend on this crate; it depends on neither.
//!
//! # Layout
//!
//! - [`ids`]: validated identifiers (`SchoolId`, `DeviceId`, `AlertId`, `Seq`, ...), parsed once
//!   at the boundary and carried as newtypes afterwards.
//! - [`time`]: [`UnixMillis`], the one timestamp type on the wire.
//! - [`alert`]: the alert model (kind, severity, state, actor) and [`alert::step`], the pure
//!   state machine.
//! - [`snapshot`]: [`SchoolSnapshot`], the periodic attendance and device roll-up.
//! - [`enroll`]: the enrollment request a gateway posts with its token and CSR, and the answer.
//! - [`request_id`]: which incoming `X-Request-Id` values the services accept.
//! - [`metrics_text`]: both services' `/metrics` in Prometheus' text format for the clients
//!   that ask for it (`promtool`), beside the OpenMetrics they render.
//! - [`sync`]: the sync wire format (`SyncBatch` up, `SyncAck` down) and its bounded codec.
//! - `names` (private): the stable text names of the enums, shared by `alert` and `sync`.
//!
//! # Invariants
//!
//! - **No I/O and no clock in the state machine.** [`alert::step`] is a pure function; the
//!   gateway's actor owns time, storage and devices and executes the returned actions.
//! - **The wire format is append-only.** Fields are never reordered and enum variants are only
//!   appended, because postcard is not self-describing; anything else bumps
//!   [`sync::SYNC_FORMAT_VERSION`]. Golden vectors in `tests/sync_golden.rs` pin the bytes.
//! - **Decoding untrusted bytes is bounded.** [`sync::decode_batch`] and [`sync::decode_ack`]
//!   check every size against [`sync::Limits`] before allocating for it and never panic.
//! - **Deliberately absent:** tokio, SQL, HTTP and MQTT. This crate is plain data and functions.

pub mod alert;
pub mod enroll;
pub mod ids;
pub mod metrics_text;
mod names;
pub mod request_id;
pub mod snapshot;
pub mod sync;
pub mod time;

pub use names::UnknownName;
pub use snapshot::{SchoolSnapshot, SnapshotCounts};
pub use time::{UnixMillis, Utc, UtcFormat};
