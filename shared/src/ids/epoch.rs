//! The gateway's sync epoch: which history of its outbox a record belongs to.
//!
//! A gateway starts a new epoch every time its agent starts, with a fresh random number. The
//! cloud keeps its cursors per `(gateway, epoch, lane)`, so a gateway whose database went back
//! in time (restored from a backup, its sequence numbers reused) writes its new records under
//! an epoch the cloud has never seen, instead of having them mistaken for ones it already has.
//! Records of an older epoch replayed by a restored gateway are the same records the cloud
//! stored, so skipping them is right.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One run of a gateway's outbox. Random and never zero; compared only for equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(u64);

impl Epoch {
    /// Wraps a number read from a store or drawn at random; `None` for zero, which no epoch
    /// uses so that a zeroed column can never pass for a real one.
    pub const fn new(n: u64) -> Option<Self> {
        if n == 0 { None } else { Some(Self(n)) }
    }

    /// The number itself.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The number as stored in a signed 64-bit column (SQLite `INTEGER`, Postgres `bigint`):
    /// the same bits, so every epoch round-trips.
    pub const fn to_i64(self) -> i64 {
        i64::from_ne_bytes(self.0.to_ne_bytes())
    }

    /// The inverse of [`Epoch::to_i64`]; `None` for zero.
    pub const fn from_i64(n: i64) -> Option<Self> {
        Self::new(u64::from_ne_bytes(n.to_ne_bytes()))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_not_an_epoch_and_every_other_value_round_trips_through_i64() {
        assert_eq!(Epoch::new(0), None);
        assert_eq!(Epoch::from_i64(0), None);
        for n in [1, 42, u64::MAX, 1 << 63, (1 << 63) - 1] {
            let epoch = Epoch::new(n).unwrap();
            assert_eq!(Epoch::from_i64(epoch.to_i64()), Some(epoch));
            assert_eq!(epoch.get(), n);
        }
        assert_eq!(Epoch::new(255).unwrap().to_string(), "00000000000000ff");
    }
}
