//! The Hallwatch gateway agent: it runs on each school's gateway appliance, hosts the devices'
//! MQTT broker behind its own mutual-TLS gate, owns the alert state, and syncs to the cloud.
//!
//! # Layout
//!
//! - [`config`]: `agent.toml`, raw (serde) then validated.
//! - [`install`]: the installer's commands: `init`, `device add|list|revoke`,
//!   `integration add|list|revoke`.
//! - [`setup`]: `edge-agent setup`, the installer's path in one run: `init`, `enroll`
//!   (after checking the token with the cloud) and the first devices.
//! - [`doctor`]: `edge-agent doctor`, checks of a gateway with a one-line fix each.
//! - [`backup`]: `edge-agent backup` and `restore`: the gateway in one archive.
//! - [`enroll`]: `edge-agent enroll`: the gateway's key, its certificate from the cloud and
//!   the `[cloud]` section of `agent.toml`.
//! - [`integration`]: what an integration (strobes, PA, signage) is and which topics it may
//!   read; the gate enforces it.
//! - [`pki`]: the gateway CA, server and device certificates, the CRL, the gateway's key and
//!   CSR towards the cloud. The only user of rcgen.
//! - [`store`]: the gateway's SQLite database. The only module that speaks SQL.
//! - [`health`]: device liveness and battery, pure and fed by the core actor.
//! - [`occupancy`]: room head counts, school snapshots and when to emit them; pure, like `health`.
//! - [`inspect`]: decoding device frames for people (firmware authors, support).
//! - [`simulate`]: `edge-agent simulate`, simulated buttons and cameras over real mTLS (rumqttc).
//! - [`metrics`]: the Prometheus series and their rendering (served by `api` at `/metrics`).
//! - `files` (private): writing new files and replacing files atomically.
//! - `cloud_http` (private): the agent's one HTTP client (reqwest), for `enroll`, `sync` and
//!   `edge-agent status`.
//!
//! Signals, systemd's notify protocol and watchdog, request ids and observation come from
//! `hallwatch_service`, shared with the cloud. `watchdog` (private) says what the watchdog
//! proves here: the engine's loop turns.
//!
//! The binary's argument parsing lives in `src/cli.rs`, a module of `main.rs` only.
//!
//! Modules that later issues bring, one owner per outside system (see ARCHITECTURE.md):
//! `gate`, `broker` (#3); `alerts`, `api` (#4); `sync` (#6).
//!
//! # Invariants
//!
//! - The gateway's local operation never waits on the cloud.
//! - Only `store` speaks SQL; only `pki` uses rcgen; only `broker` imports rumqttd; only `api`
//!   imports axum; only `cloud_http` imports reqwest. `cargo xtask test` checks it
//!   (`xtask/src/owners.rs`).
//! - Private keys are created with mode 0600 and never widened afterwards.

mod agent;
pub mod api;
pub mod backup;
pub mod broker;
mod cloud_http;
pub mod config;
pub mod doctor;
pub mod engine;
pub mod enroll;
mod files;
pub mod gate;
mod gateway;
pub mod health;
pub mod inspect;
pub mod install;
pub mod integration;
pub mod metrics;
pub mod occupancy;
pub mod pki;
pub mod setup;
pub mod simulate;
pub mod store;
pub mod sync;
pub mod view;
mod watchdog;

pub use agent::{Agent, run};
pub use gateway::Gateway;
