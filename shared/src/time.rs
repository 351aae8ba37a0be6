//! [`UnixMillis`], the single timestamp type on the wire and in both stores.
//!
//! Milliseconds since the Unix epoch as a signed 64-bit integer: the resolution alerts need,
//! the shape both SQLite (`INTEGER`) and Postgres (`BIGINT`) store natively, and a compact
//! varint in postcard. Wall-clock time only; durations and timers use monotonic clocks
//! elsewhere.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A wall-clock instant, in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(i64);

impl UnixMillis {
    /// The epoch itself.
    pub const EPOCH: UnixMillis = UnixMillis(0);

    /// Wraps a value read from a store or the wire.
    pub const fn new(millis: i64) -> Self {
        Self(millis)
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Milliseconds since the epoch.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// This instant as a `SystemTime`, or `None` if the platform cannot represent it.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let offset = Duration::from_millis(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH.checked_add(offset)
        } else {
            UNIX_EPOCH.checked_sub(offset)
        }
    }

    /// `self + duration`, clamped to the representable range.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// How long after `earlier` this instant is, or `None` if it is before `earlier`
    /// (wall clocks can step backwards).
    pub fn duration_since(self, earlier: UnixMillis) -> Option<Duration> {
        let diff = self.0.checked_sub(earlier.0)?;
        u64::try_from(diff).ok().map(Duration::from_millis)
    }
}

/// Sub-millisecond precision is truncated toward the epoch; instants beyond the `i64` range
/// (hundreds of millions of years away) saturate.
impl From<SystemTime> for UnixMillis {
    fn from(time: SystemTime) -> Self {
        let to_i64 = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(to_i64(after)),
            Err(before) => Self(-to_i64(before.duration())),
        }
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_and_from_system_time() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123) + Duration::from_micros(999);
        let ms = UnixMillis::from(t);
        assert_eq!(ms, UnixMillis::new(1_700_000_000_123));
        assert_eq!(
            ms.to_system_time(),
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        );
        let before = UNIX_EPOCH - Duration::from_millis(5);
        assert_eq!(UnixMillis::from(before), UnixMillis::new(-5));
        assert_eq!(UnixMillis::new(-5).to_system_time(), Some(before));
    }

    #[test]
    fn arithmetic_saturates_and_refuses_negative_durations() {
        let t = UnixMillis::new(1_000);
        assert_eq!(
            t.saturating_add(Duration::from_secs(2)),
            UnixMillis::new(3_000)
        );
        assert_eq!(
            UnixMillis::new(i64::MAX).saturating_add(Duration::MAX),
            UnixMillis::new(i64::MAX)
        );
        assert_eq!(
            UnixMillis::new(3_000).duration_since(t),
            Some(Duration::from_secs(2))
        );
        assert_eq!(t.duration_since(UnixMillis::new(3_000)), None);
        assert!(UnixMillis::now() > UnixMillis::new(1_600_000_000_000));
    }
}
