//! The Hallwatch cloud service: it enrolls school gateways, merges their sync batches
//! idempotently into one multi-tenant Postgres, and serves role-scoped dashboards.
//!
//! # Layout
//!
//! - [`db`]: the only module that speaks SQL: scoped transactions, admin upkeep, enrollment,
//!   the batch merge, commands, audit. [`MIGRATOR`] holds `migrations/cloud`.
//! - [`pki`]: the gateway CA (created in the data directory), enrollment tokens, the identity
//!   in a client certificate. No network, no SQL.
//! - [`inspect`]: summarising a captured sync body for people (support, debugging).
//!
//! Modules that later issues bring (see ARCHITECTURE.md): `auth`, `api` for people,
//! `realtime`, the dashboard (#7).
//!
//! # Invariants
//!
//! - A gateway's school and identity come from its client certificate, never from the body.
//! - Every tenant query runs in a transaction that set its scope ([`db::begin`]); the service
//!   connects as a role bound by row-level security, so a forgotten scope reads nothing.
//! - Sync bodies are decoded only through `shared::sync`, with its limits.

pub mod db;
pub mod inspect;
pub mod pki;

pub use db::MIGRATOR;
