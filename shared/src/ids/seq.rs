//! The gateway's outbox sequence number.
//!
//! Every record a gateway emits gets the next `Seq` of its lane; the cloud acknowledges
//! "everything of this lane and epoch up to and including N", so the gateway can drop what was delivered and resend the rest. Numbering
//! starts at [`Seq::FIRST`]; [`Seq::ZERO`] means "nothing yet" (an ack of zero acks nothing).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A position in one lane of a gateway's outbox. Strictly increasing per lane.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(u64);

impl Seq {
    /// Before the first record.
    pub const ZERO: Seq = Seq(0);
    /// The first record's number.
    pub const FIRST: Seq = Seq(1);

    /// Wraps a number read from a store.
    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    /// The number itself.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The following number, or `None` if the outbox has (implausibly) run out of numbers;
    /// the caller must stop rather than wrap, since a wrapped number would be acked as old.
    pub const fn next(self) -> Option<Seq> {
        match self.0.checked_add(1) {
            Some(n) => Some(Seq(n)),
            None => None,
        }
    }
}

impl From<u64> for Seq {
    fn from(n: u64) -> Self {
        Self(n)
    }
}

impl From<Seq> for u64 {
    fn from(seq: Seq) -> u64 {
        seq.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_counts_up_and_refuses_to_wrap() {
        assert_eq!(Seq::ZERO.next(), Some(Seq::FIRST));
        assert_eq!(Seq::new(41).next(), Some(Seq::new(42)));
        assert_eq!(Seq::new(u64::MAX).next(), None);
        assert!(Seq::new(2) > Seq::FIRST);
    }
}
