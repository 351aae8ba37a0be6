//! The Hallwatch gateway agent: it runs on each school's gateway appliance, hosts the devices'
//! MQTT broker behind its own mutual-TLS gate, owns the alert state, and syncs to the cloud.
//!
//! # Layout
//!
//! - [`inspect`]: decoding device frames for people (firmware authors, support).
//!
//! Modules that later issues bring, one owner per outside system (see ARCHITECTURE.md):
//! `config`, `pki`, `gate`, `broker` (#3); `store`, `alerts`, `health`, `occupancy`, `api` (#4);
//! `sync` (#6).
//!
//! # Invariants
//!
//! - The gateway's local operation never waits on the cloud.
//! - Only `store` speaks SQL (from #4); only `broker` imports rumqttd (from #3).

pub mod inspect;
