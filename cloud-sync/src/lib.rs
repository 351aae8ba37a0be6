//! The Hallwatch cloud service: it enrolls school gateways, merges their sync batches
//! idempotently into one multi-tenant Postgres, and serves role-scoped dashboards.
//!
//! # Layout
//!
//! - [`db`]: the only module that speaks SQL (and names sqlx: callers use [`db::Pool`],
//!   [`db::ConnectOptions`] and [`db::DbError`]): scoped transactions, admin upkeep, accounts,
//!   enrollment, the batch merge, commands, audit. [`MIGRATOR`] holds `migrations/cloud`.
//! - [`auth`]: people's accounts without SQL or network: e-mail addresses, roles and grants,
//!   Argon2id password hashes, the Ed25519 keys that sign access tokens, refresh tokens, the
//!   optional TOTP second factor and the key that seals its secrets at rest.
//! - [`pki`]: the gateway CA (created in the data directory), enrollment tokens, the identity
//!   in a client certificate. No network, no SQL.
//! - [`api`]: the HTTP handlers (the only module that imports axum): login, refresh and
//!   logout, the [`api::Caller`] extractor that gives every people-facing handler its scope,
//!   `GET /api/v1/me` and one's own second factor (`/api/v1/me/totp`), enrollment, sync, the rate limits, the JSON error type.
//! - [`server`]: binding and running the public, the mTLS sync and the metrics listeners (the
//!   accept loops, TLS and each connection's certificate identity; the per-connection services
//!   come from `api`, so `server` needs no axum); the background tasks (snapshot partitions,
//!   gateway liveness); what systemd's watchdog proves (the pool answers).
//! - [`metrics`]: the Prometheus series (HTTP latency by route, sync batches and records,
//!   the pool, SSE connections, gateways online/offline) and their rendering.
//! - [`config`]: [`Config`], validated settings for `serve`, and [`Liveness`].
//! - [`settings`]: where `serve`'s settings come from — flags, `HALLWATCH_CLOUD_*` variables,
//!   the `--config` TOML file — layered and validated into a [`Config`], every refusal naming
//!   its source.
//! - [`inspect`]: summarising a captured sync body for people (support, debugging).
//!
//! - [`realtime`]: the replica's fan-out of committed events (Postgres `LISTEN`) to its SSE
//!   streams.
//!
//! The dashboard comes with a later part of #7 (see ARCHITECTURE.md).
//!
//! # Invariants
//!
//! - Only `db` names sqlx, only `api` axum, only `pki` rcgen; `cargo xtask test` checks it
//!   (`xtask/src/owners.rs`).
//! - A gateway's school and identity come from its client certificate, never from the body.
//! - Every tenant query runs in a transaction that set its scope ([`db::begin`]); the service
//!   connects as a role bound by row-level security, so a forgotten scope reads nothing.
//! - A person's scope comes only from [`api::Caller`]: a verified access token and the
//!   user's grants as stored now.
//! - Sync bodies are decoded only through `shared::sync`, with its limits.

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod inspect;
pub mod metrics;
pub mod pki;
pub mod realtime;
pub mod server;
pub mod settings;

pub use config::{Config, Liveness, LoginLimits, Quota};
pub use db::MIGRATOR;
pub use server::Server;
