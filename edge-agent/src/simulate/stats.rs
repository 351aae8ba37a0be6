//! The run's counters: atomics every device updates, read into [`Totals`] for the summary.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};

/// The run's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Devices simulated.
    pub devices: usize,
    /// Devices connected right now.
    pub connected: usize,
    /// MQTT PUBLISH packets written (new frames and retransmitted presses).
    pub frames_sent: u64,
    /// Distinct presses.
    pub presses: u64,
    /// Presses sent again for want of a `PressAck`.
    pub retransmits: u64,
    /// Presses still waiting for their `PressAck`.
    pub pending: u64,
    /// `PressAck`s received.
    pub acks: u64,
    /// Presses given up after `press_retry_limit` sends.
    pub given_up: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self;
        write!(
            f,
            "connected {}/{}, frames sent {}, presses {} (retransmits {}), pending ack {}, \
             acks received {}, given up {}, connect failures {}",
            t.connected,
            t.devices,
            t.frames_sent,
            t.presses,
            t.retransmits,
            t.pending,
            t.acks,
            t.given_up,
            t.connect_failures
        )
    }
}

/// Counters every device updates.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) connected: AtomicUsize,
    pub(super) frames_sent: AtomicU64,
    pub(super) presses: AtomicU64,
    pub(super) retransmits: AtomicU64,
    pub(super) pending: AtomicU64,
    pub(super) acks: AtomicU64,
    pub(super) given_up: AtomicU64,
    pub(super) connect_failures: AtomicU64,
}

impl Stats {
    pub(super) fn totals(&self, devices: usize) -> Totals {
        Totals {
            devices,
            connected: self.connected.load(Relaxed),
            frames_sent: self.frames_sent.load(Relaxed),
            presses: self.presses.load(Relaxed),
            retransmits: self.retransmits.load(Relaxed),
            pending: self.pending.load(Relaxed),
            acks: self.acks.load(Relaxed),
            given_up: self.given_up.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
        }
    }
}
