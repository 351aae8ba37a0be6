//! [`UnixMillis`], the single timestamp type on the wire and in both stores.
//!
//! Milliseconds since the Unix epoch as a signed 64-bit integer: the resolution alerts need,
//! the shape both SQLite (`INTEGER`) and Postgres (`BIGINT`) store natively, and a compact
//! varint in postcard. Wall-clock time only; durations and timers use monotonic clocks
//! elsewhere.
//!
//! [`UnixMillis::utc`] is the one place an instant becomes a date for people (command output,
//! tables, file names), in one of the [`UtcFormat`]s.

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

    /// This instant in UTC, truncated to whole seconds (what certificates and people's dates
    /// carry), or `None` beyond the years -9999 to 9999.
    pub fn to_utc(self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::from_unix_timestamp(self.0.div_euclid(1000)).ok()
    }

    /// This instant written in UTC as `format` says (see [`Utc`]).
    pub const fn utc(self, format: UtcFormat) -> Utc {
        Utc { at: self, format }
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

/// How [`UnixMillis::utc`] writes an instant, in whole seconds of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UtcFormat {
    /// `2026-03-01`: a certificate's expiry, a device's enrollment.
    Date,
    /// `2026-03-01 08:15:00Z`: when a device was last seen, when a backup was taken.
    DateTime,
    /// `20260301T081500Z`: sorts in time order and fits in a file name.
    Compact,
}

/// An instant written in UTC ([`UnixMillis::utc`]); beyond the years -9999 to 9999 it is
/// written as [`UnixMillis`] itself is (`…ms`), since no date can say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    at: UnixMillis,
    format: UtcFormat,
}

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(t) = self.at.to_utc() else {
            return self.at.fmt(f);
        };
        let (date, h, m, s) = (t.date(), t.hour(), t.minute(), t.second());
        match self.format {
            UtcFormat::Date => write!(f, "{date}"),
            UtcFormat::DateTime => write!(f, "{date} {h:02}:{m:02}:{s:02}Z"),
            UtcFormat::Compact => write!(
                f,
                "{:04}{:02}{:02}T{h:02}{m:02}{s:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_dates_in_utc_whole_seconds() {
        // 2023-11-14 22:13:20.999 UTC.
        let t = UnixMillis::new(1_700_000_000_999);
        assert_eq!(t.utc(UtcFormat::Date).to_string(), "2023-11-14");
        assert_eq!(
            t.utc(UtcFormat::DateTime).to_string(),
            "2023-11-14 22:13:20Z"
        );
        assert_eq!(t.utc(UtcFormat::Compact).to_string(), "20231114T221320Z");
        assert_eq!(
            UnixMillis::EPOCH.utc(UtcFormat::DateTime).to_string(),
            "1970-01-01 00:00:00Z"
        );
        // Before the epoch a partial second still belongs to the second that began it.
        assert_eq!(
            UnixMillis::new(-1).utc(UtcFormat::DateTime).to_string(),
            "1969-12-31 23:59:59Z"
        );
    }

    #[test]
    fn an_instant_no_date_can_say_is_written_in_milliseconds() {
        let far = UnixMillis::new(i64::MAX);
        assert_eq!(far.to_utc(), None);
        assert_eq!(far.utc(UtcFormat::Date).to_string(), far.to_string());
        assert_eq!(
            UnixMillis::new(1_700_000_000_999)
                .to_utc()
                .map(|t| t.unix_timestamp()),
            Some(1_700_000_000)
        );
    }

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
