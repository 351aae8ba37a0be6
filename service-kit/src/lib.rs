//! Service plumbing shared by both Hallwatch services (`edge-agent run` and `cloud-sync
//! serve`): each piece is written once here, so the two cannot drift apart.
//!
//! # Layout
//!
//! - [`signal`]: the stop signals (SIGTERM from systemd, SIGINT from a terminal).
//! - [`notify`]: systemd's notify protocol (`READY`, `STOPPING`) and the [`notify::Watchdog`]
//!   that pings only while a [`notify::Probe`] says the service is alive. The only module that
//!   speaks to the service manager.
//! - [`request_id`]: the ids that follow one request or connection through the logs.
//! - [`observe`]: the axum middleware every request goes through first: its id, span, latency
//!   metric and log line.
//! - [`sse`]: the `Last-Event-ID` header of a reconnecting Server-Sent Events client.
//! - [`logging`]: the log format both binaries write to stderr.
//!
//! # Invariants
//!
//! - Nothing here knows either service's state: what differs (the metrics, what the watchdog
//!   proves) comes in through a closure or a trait.
//! - Only `observe` and `sse` import axum.

pub mod logging;
pub mod notify;
pub mod observe;
pub mod request_id;
pub mod signal;
pub mod sse;
