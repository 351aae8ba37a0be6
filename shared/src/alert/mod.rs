//! Alerts: what they are and how they move from trigger to close.
//!
//! - `model`: the nouns ([`AlertKind`], [`Severity`], [`AlertState`], [`Actor`]) and
//!   [`AlertEventKind`], the entries of the append-only alert log.
//! - `machine`: [`step`], the pure transition function, with its inputs ([`AlertEvent`]) and
//!   outputs ([`Transition`], [`Action`]).
//! - `error`: [`IllegalTransition`], why an event was refused.
//!
//! Architecture invariant: nothing here does I/O or reads a clock. The gateway's alert actor
//! decides *when* things happen (it owns the escalation timer and the cancel window) and
//! executes the returned actions; this module only decides *what* is allowed and what follows.
//! The full transition table is pinned by `tests/alert_transitions.rs`.

mod error;
mod machine;
mod model;

pub use error::{IllegalReason, IllegalTransition};
pub use machine::{Action, AlertEvent, Feedback, Transition, Verb, step, trigger};
pub use model::{Actor, AlertEventKind, AlertKind, AlertState, Severity, Source};
