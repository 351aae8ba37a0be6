//! The engine's proof of life: a monotonic timestamp its loop renews on every turn.
//!
//! The loop turns at least every [`TURN_AT_LEAST_EVERY`], idle or not, so a heartbeat older than
//! that by more than scheduling noise means the engine is stuck inside a turn (a wedged disk, a
//! database lock held elsewhere, a bug that never returns). The service watchdog reads it and
//! withholds systemd's ping while it is stale, so a hung engine gets the agent restarted
//! instead of leaving a healthy-looking process behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::SharedClock;

/// The longest the engine's loop goes without a turn when nothing happens. Readers of the
/// heartbeat must allow at least twice this (systemd's `WatchdogSec=` at least 2 s: the
/// watchdog wants a heartbeat younger than half of it).
pub const TURN_AT_LEAST_EVERY: Duration = Duration::from_millis(500);

/// When the engine's loop last turned. Shared between the engine (which beats) and whoever
/// watches it.
#[derive(Debug)]
pub struct Heartbeat {
    /// Its monotonic time is what the heartbeat measures in.
    clock: SharedClock,
    /// The clock's monotonic milliseconds at the last beat.
    last: AtomicU64,
}

impl Heartbeat {
    /// A heartbeat that has just beaten.
    pub(super) fn new(clock: SharedClock) -> Heartbeat {
        let heartbeat = Heartbeat {
            clock,
            last: AtomicU64::new(0),
        };
        heartbeat.beat();
        heartbeat
    }

    /// The loop turned.
    pub(super) fn beat(&self) {
        self.last.store(self.monotonic_ms(), Ordering::Relaxed);
    }

    /// How long ago the loop last turned.
    pub fn age(&self) -> Duration {
        let last = self.last.load(Ordering::Relaxed);
        Duration::from_millis(self.monotonic_ms().saturating_sub(last))
    }

    fn monotonic_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::clock::ManualClock;

    #[test]
    fn a_beat_makes_the_heartbeat_young_and_it_ages_after() {
        let clock = ManualClock::starting_at(shared::UnixMillis::new(0));
        let heartbeat = Heartbeat::new(clock.clone());
        assert_eq!(heartbeat.age(), Duration::ZERO);
        clock.advance(Duration::from_millis(30));
        assert_eq!(heartbeat.age(), Duration::from_millis(30));
        heartbeat.beat();
        assert_eq!(heartbeat.age(), Duration::ZERO);
        // A wall clock stepped back does not make the heartbeat look younger or older.
        clock.set_wall(shared::UnixMillis::new(-3_600_000));
        clock.advance(Duration::from_millis(5));
        assert_eq!(heartbeat.age(), Duration::from_millis(5));
    }
}
