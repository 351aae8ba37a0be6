//! The Hallwatch cloud service: it enrolls school gateways, merges their sync batches
//! idempotently into one multi-tenant Postgres, and serves role-scoped dashboards.
//!
//! # Layout
//!
//! - [`inspect`]: summarising a captured sync body for people (support, debugging).
//!
//! Modules that later issues bring (see ARCHITECTURE.md): `db` and migrations, `enroll`,
//! `ingest` (#5); `auth`, `api`, `realtime`, the dashboard (#7).
//!
//! # Invariants
//!
//! - A gateway's school and identity come from its client certificate, never from the body
//!   (from #5).
//! - Sync bodies are decoded only through `shared::sync`, with its limits.

pub mod inspect;
