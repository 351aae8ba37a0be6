//! The agent's clock, passed in rather than read: wall time for the stamps the gateway stores
//! and sends ([`UnixMillis`]), and monotonic time for how long something took or how old a
//! heartbeat is.
//!
//! The process edge ([`crate::Agent::start`], the commands' entry points) creates the
//! [`SystemClock`]; everything below it takes a [`SharedClock`]. Tests pass a [`ManualClock`]
//! and move it by hand, so the alert rules (escalation, cancel windows, device liveness,
//! snapshot schedules) are checked at exact instants without sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shared::UnixMillis;

/// Where the agent's code gets the time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The wall time: what is stored and sent. It can step (NTP, an installer setting the date).
    fn now(&self) -> UnixMillis;

    /// Monotonic time since the clock's own origin: never goes back, for durations only.
    fn elapsed(&self) -> Duration;
}

/// A clock shared between the threads that read it.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clocks.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// The system clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock {
            origin: Instant::now(),
        })
    }
}

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        UnixMillis::now()
    }

    fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug)]
pub struct ManualClock {
    wall: AtomicI64,
    /// Milliseconds since the origin.
    monotonic: AtomicU64,
}

impl ManualClock {
    /// A clock whose wall time reads `start` until moved.
    pub fn starting_at(start: UnixMillis) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            wall: AtomicI64::new(start.get()),
            monotonic: AtomicU64::new(0),
        })
    }

    /// Moves both the wall time and the monotonic time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.monotonic.fetch_add(ms, Ordering::SeqCst);
        self.wall
            .fetch_add(i64::try_from(ms).unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    /// Sets the wall time alone, as when the system clock is stepped (monotonic time stays).
    pub fn set_wall(&self, to: UnixMillis) {
        self.wall.store(to.get(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        UnixMillis::new(self.wall.load(Ordering::SeqCst))
    }

    fn elapsed(&self) -> Duration {
        Duration::from_millis(self.monotonic.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_when_told_and_a_step_leaves_monotonic_time_alone() {
        let clock = ManualClock::starting_at(UnixMillis::new(1_000));
        assert_eq!(clock.now(), UnixMillis::new(1_000));
        clock.advance(Duration::from_millis(250));
        assert_eq!(clock.now(), UnixMillis::new(1_250));
        assert_eq!(clock.elapsed(), Duration::from_millis(250));
        clock.set_wall(UnixMillis::new(0));
        assert_eq!(clock.now(), UnixMillis::new(0));
        assert_eq!(clock.elapsed(), Duration::from_millis(250));
    }

    #[test]
    fn the_system_clock_reads_the_present() {
        let clock = SystemClock::shared();
        assert!(clock.now() > UnixMillis::new(1_600_000_000_000));
        let before = clock.elapsed();
        assert!(clock.elapsed() >= before);
    }
}
