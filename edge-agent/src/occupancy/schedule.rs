//! [`SnapshotSchedule`]: when the actor should emit a school snapshot.
//!
//! Three reasons, all configurable: a *change* in the numbers (debounced, so a class walking
//! in one by one makes one snapshot, not thirty), a *heartbeat* when nothing has been emitted
//! for a while (so the cloud can tell a quiet school from a dead gateway), and a *scheduled*
//! full snapshot at a fixed period (the district dashboard's regular data point).
//!
//! Every snapshot is built from the state at the moment it is emitted, so any emission
//! includes every change so far: each one clears a pending change and restarts the heartbeat,
//! and a scheduled one also restarts the full period. Timers count from when a snapshot was
//! actually emitted, so a gateway that was suspended catches up with one snapshot, not a burst.

use std::fmt;
use std::str::FromStr;

use shared::{UnixMillis, UnknownName};

use crate::config::SnapshotPolicy;

/// A burst of changes is emitted at the latest this many debounce periods after its first
/// change, so a room whose count changes every half second is still reported.
pub const MAX_WAIT_DEBOUNCES: u32 = 5;

/// Why a snapshot was emitted; stored with it and shown on dashboards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SnapshotKind {
    /// The numbers changed.
    Change,
    /// Nothing emitted for a heartbeat period.
    Heartbeat,
    /// The regular full snapshot.
    Scheduled,
}

impl SnapshotKind {
    /// The stable text name used in the store and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Change => "change",
            SnapshotKind::Heartbeat => "heartbeat",
            SnapshotKind::Scheduled => "scheduled",
        }
    }
}

impl fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the names [`SnapshotKind::as_str`] writes, for [`SnapshotSchedule::resume`].
impl FromStr for SnapshotKind {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            SnapshotKind::Change,
            SnapshotKind::Heartbeat,
            SnapshotKind::Scheduled,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == s)
        .ok_or_else(|| UnknownName {
            what: "snapshot kind",
            name: s.to_owned(),
        })
    }
}

/// The snapshot timers' state.
#[derive(Debug, Clone)]
pub struct SnapshotSchedule {
    policy: SnapshotPolicy,
    /// The latest snapshot of any kind; the heartbeat counts from it.
    last_emitted: UnixMillis,
    next_full: UnixMillis,
    pending: Option<Pending>,
}

/// A run of changes not yet emitted.
#[derive(Debug, Clone, Copy)]
struct Pending {
    first: UnixMillis,
    last: UnixMillis,
}

impl SnapshotSchedule {
    /// A schedule for a gateway that has never emitted a snapshot: a scheduled one is due at
    /// once, so the cloud learns the school's numbers as soon as the gateway starts.
    pub fn new(policy: SnapshotPolicy, now: UnixMillis) -> Self {
        Self::resume(policy, None, None, now)
    }

    /// A schedule continuing from the stored latest snapshot and latest full one, so a
    /// restart neither repeats a snapshot just sent nor waits a whole period again. Overdue
    /// timers make one snapshot at once (a scheduled one if the full period is overdue, which
    /// also covers the heartbeat). Times in the future (the clock stepped back) count as
    /// `now`. Changes made before the restart are unknown; the heartbeat covers them.
    pub fn resume(
        policy: SnapshotPolicy,
        last_emitted: Option<(UnixMillis, SnapshotKind)>,
        last_full: Option<UnixMillis>,
        now: UnixMillis,
    ) -> Self {
        let emitted_full = last_emitted
            .filter(|(_, kind)| *kind == SnapshotKind::Scheduled)
            .map(|(at, _)| at);
        let next_full = match last_full.max(emitted_full) {
            Some(at) => at.min(now).saturating_add(policy.full),
            None => now,
        };
        let last_emitted = last_emitted.map_or(now, |(at, _)| at.min(now));
        Self {
            policy,
            last_emitted,
            next_full,
            pending: None,
        }
    }

    /// Something a snapshot shows changed: starts the debounce, or extends a running one up to
    /// [`MAX_WAIT_DEBOUNCES`] debounce periods after its first change.
    pub fn changed(&mut self, now: UnixMillis) {
        self.rebase(now);
        match &mut self.pending {
            Some(pending) => pending.last = now,
            None => {
                self.pending = Some(Pending {
                    first: now,
                    last: now,
                })
            }
        }
    }

    /// The snapshot to emit now, if any; the caller emits it at once. At most one per call:
    /// scheduled before change before heartbeat.
    pub fn due(&mut self, now: UnixMillis) -> Option<SnapshotKind> {
        self.rebase(now);
        let kind = if now >= self.next_full {
            SnapshotKind::Scheduled
        } else if self.change_deadline().is_some_and(|at| now >= at) {
            SnapshotKind::Change
        } else if now >= self.heartbeat_deadline() {
            SnapshotKind::Heartbeat
        } else {
            return None;
        };
        self.last_emitted = now;
        self.pending = None;
        if kind == SnapshotKind::Scheduled {
            self.next_full = now.saturating_add(self.policy.full);
        }
        Some(kind)
    }

    /// The earliest instant at which [`SnapshotSchedule::due`] returns a snapshot, unless
    /// [`SnapshotSchedule::changed`] is called before then.
    pub fn next_deadline(&self) -> UnixMillis {
        let timers = self.next_full.min(self.heartbeat_deadline());
        self.change_deadline().map_or(timers, |at| timers.min(at))
    }

    fn heartbeat_deadline(&self) -> UnixMillis {
        self.last_emitted.saturating_add(self.policy.heartbeat)
    }

    /// Trailing debounce, bounded by the maximum wait.
    fn change_deadline(&self) -> Option<UnixMillis> {
        let debounce = self.policy.debounce;
        let max_wait = debounce.saturating_mul(MAX_WAIT_DEBOUNCES);
        self.pending.map(|pending| {
            let quiet = pending.last.saturating_add(debounce);
            quiet.min(pending.first.saturating_add(max_wait))
        })
    }

    /// Pulls times in the future back to `now`, so a clock stepped back by an hour does not
    /// silence snapshots for an hour.
    fn rebase(&mut self, now: UnixMillis) {
        self.last_emitted = self.last_emitted.min(now);
        self.next_full = self.next_full.min(now.saturating_add(self.policy.full));
        if let Some(pending) = &mut self.pending {
            pending.first = pending.first.min(now);
            pending.last = pending.last.min(now);
        }
    }
}

#[cfg(test)]
mod tests;
