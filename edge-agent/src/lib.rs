//! The Hallwatch gateway agent: it runs on each school's gateway appliance, hosts the devices'
//! MQTT broker behind its own mutual-TLS gate, owns the alert state, and syncs to the cloud.
//!
//! # Layout
//!
//! - [`config`]: `agent.toml`, raw (serde) then validated; owns every validated settings type
//!   (alerts, press maps, gate limits, health, occupancy and snapshot policies, rooms). A
//!   leaf: it imports nothing of the agent but `layout`.
//! - [`layout`]: the data directory's files (`agent.toml`, the database, keys, certificates,
//!   the CRL, the operator token), the only place their names are spelled. A leaf.
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
//! - [`engine`]: the actor that owns the gateway's state (alerts, device health, occupancy,
//!   snapshots) and the database's writing connection; the alert transitions themselves are
//!   `shared::alert::step`.
//! - [`bus`]: what passes between the device side and the engine (uplinks in, an
//!   [`bus::Outbound`] for downlinks), so the engine never names the broker.
//! - [`broker`]: the embedded rumqttd and the agent's and gate's links into it. The only user of
//!   rumqttd.
//! - [`clock`]: wall and monotonic time, passed in: the system clock in production, a manual
//!   one in tests.
//! - [`health`]: device liveness and battery, pure and fed by the core actor.
//! - [`occupancy`]: room head counts, school snapshots and when to emit them; pure, like `health`.
//! - [`inspect`]: decoding device frames for people (firmware authors, support).
//! - [`simulate`]: `edge-agent simulate`, simulated buttons and cameras over real mTLS (rumqttc).
//! - [`gate`]: the device-facing mutual-TLS MQTT listener: limits, identity from the
//!   certificate, topic checks, integrations' subscriptions.
//! - [`api`]: the local dashboard and REST API (axum), with the embedded pages.
//! - [`sync`]: the outbox's uploader: one loop per lane, its client and its status.
//! - [`status`]: `edge-agent status`: asks the running agent, else reads the outbox.
//! - [`view`]: the JSON shapes the dashboard, the API and integrations read.
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
//! Private besides: `agent` (the whole agent, started and stopped in order), `gateway` (the
//! device side: broker and gate), `cloud_http` (what `enroll` and `sync` share about HTTP towards the cloud).
//!
//! # Invariants
//!
//! - The gateway's local operation never waits on the cloud.
//! - Only `store` speaks SQL; only `pki` uses rcgen; only `broker` imports rumqttd; only `api`
//!   imports axum; only `cloud_http` imports reqwest. `cargo xtask test` checks it
//!   (`xtask/src/owners.rs`).
//! - Private keys are created with mode 0600 and never widened afterwards.
//! - No import circle between top-level modules (`cargo xtask imports`, run by
//!   `cargo xtask test`); the engine names neither the broker nor rumqttd, only `bus`.
//! - The engine, the sync lanes and the API stamp with the agent's [`clock::SharedClock`]
//!   and read no clock of their own; the one-shot commands (`init`, `device add`, `doctor`,
//!   `backup`, …) read the system clock at their start, as process edges.

mod agent;
pub mod api;
pub mod backup;
pub mod broker;
pub mod bus;
pub mod clock;
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
pub mod layout;
pub mod metrics;
pub mod occupancy;
pub mod pki;
pub mod setup;
pub mod simulate;
pub mod status;
pub mod store;
pub mod sync;
pub mod view;
mod watchdog;

pub use agent::{Agent, run};
pub use gateway::Gateway;
