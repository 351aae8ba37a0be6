//! The engine's proof of life: a monotonic timestamp its loop renews on every turn.
//!
//! The loop turns at least every [`TURN_AT_LEAST_EVERY`], idle or not, so a heartbeat older than
//! that by more than scheduling noise means the engine is stuck inside a turn (a wedged disk, a
//! database lock held elsewhere, a bug that never returns). The service watchdog reads it and
//! withholds systemd's ping while it is stale, so a hung engine gets the agent restarted
//! instead of leaving a healthy-looking process behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest the engine's loop goes without a turn when nothing happens. Readers of the
/// heartbeat must allow at least twice this (systemd's `WatchdogSec=` at least 2 s: the
/// watchdog wants a heartbeat younger than half of it).
pub const TURN_AT_LEAST_EVERY: Duration = Duration::from_millis(500);

/// When the engine's loop last turned. Shared between the engine (which beats) and whoever
/// watches it.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds from `origin` to the last beat.
    last: AtomicU64,
}

impl Heartbeat {
    pub(super) fn new() -> Heartbeat {
        Heartbeat {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// The loop turned.
    pub(super) fn beat(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// How long ago the loop last turned.
    pub fn age(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beat_makes_the_heartbeat_young_and_it_ages_after() {
        let heartbeat = Heartbeat::new();
        std::thread::sleep(Duration::from_millis(30));
        assert!(heartbeat.age() >= Duration::from_millis(30));
        heartbeat.beat();
        assert!(heartbeat.age() < Duration::from_millis(30));
    }
}
