//! [`SyncStatus`]: what the lanes last experienced, for `GET /api/v1/sync` and
//! `edge-agent status`. Backlog figures are not kept here: they are read from the outbox when
//! asked, so they cannot disagree with it.

use std::sync::Mutex;

use shared::UnixMillis;
use shared::ids::Epoch;

use crate::store::LaneBacklog;
use crate::view::{LaneView, SyncErrorView, SyncView};

/// The link to the cloud as the sync loop last found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not enrolled, so not syncing at all.
    NotEnrolled,
    /// Enrolled, but the enrollment files or settings cannot be used; nothing is sent.
    Misconfigured,
    /// No request has finished yet.
    Connecting,
    /// The last request was answered with an acknowledgement.
    Up,
    /// The last request failed: the cloud is unreachable, slow, or answering errors.
    Down,
    /// The cloud refuses this gateway (revoked, not enrolled there, certificate mismatch).
    Refused,
}

impl LinkState {
    /// The name in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            LinkState::NotEnrolled => "not_enrolled",
            LinkState::Misconfigured => "misconfigured",
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::Refused => "refused",
        }
    }
}

/// One moment's view of the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReport {
    pub state: LinkState,
    /// The epoch this run writes under.
    pub epoch: Option<Epoch>,
    pub last_success_at: Option<UnixMillis>,
    pub last_attempt_at: Option<UnixMillis>,
    /// The newest failure, kept after the link recovers so people can see what happened.
    pub last_error: Option<(UnixMillis, String)>,
    /// Failures since the last success.
    pub failures: u32,
}

/// Shared by the lanes (which write it) and the API (which reads it).
#[derive(Debug)]
pub struct SyncStatus {
    inner: Mutex<LinkReport>,
}

impl SyncStatus {
    /// A status starting in `state`.
    pub fn new(state: LinkState, epoch: Option<Epoch>) -> SyncStatus {
        SyncStatus {
            inner: Mutex::new(LinkReport {
                state,
                epoch,
                last_success_at: None,
                last_attempt_at: None,
                last_error: None,
                failures: 0,
            }),
        }
    }

    /// A status that will never change: not enrolled, or unusable for `reason`.
    pub fn fixed(
        state: LinkState,
        epoch: Option<Epoch>,
        reason: Option<String>,
        now: UnixMillis,
    ) -> SyncStatus {
        let status = SyncStatus::new(state, epoch);
        if let Some(reason) = reason {
            status.lock().last_error = Some((now, reason));
        }
        status
    }

    /// The current view.
    pub fn report(&self) -> LinkReport {
        self.lock().clone()
    }

    pub(super) fn succeeded(&self, now: UnixMillis) {
        let mut inner = self.lock();
        inner.state = LinkState::Up;
        inner.last_success_at = Some(now);
        inner.last_attempt_at = Some(now);
        inner.failures = 0;
    }

    pub(super) fn failed(&self, now: UnixMillis, state: LinkState, message: String) {
        let mut inner = self.lock();
        inner.state = state;
        inner.last_attempt_at = Some(now);
        inner.last_error = Some((now, message));
        inner.failures = inner.failures.saturating_add(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkReport> {
        // A panic while holding this lock leaves plain data behind; keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The view is built here, beside the report it shows, so `view` needs nothing of `sync`.
impl SyncView {
    /// Joins the loop's report with the outbox's figures, as of `now`.
    pub fn new(
        report: &LinkReport,
        backlog: &[LaneBacklog],
        dead_letters: u64,
        last_storage_pressure: Option<UnixMillis>,
        now: UnixMillis,
    ) -> SyncView {
        SyncView {
            link: report.state.as_str().to_owned(),
            epoch: report.epoch.map(|e| e.to_string()),
            last_success_at: report.last_success_at.map(|t| t.get()),
            last_attempt_at: report.last_attempt_at.map(|t| t.get()),
            failures: report.failures,
            last_error: report
                .last_error
                .as_ref()
                .map(|(at, message)| SyncErrorView {
                    at: at.get(),
                    message: message.clone(),
                }),
            lanes: backlog
                .iter()
                .map(|lane| LaneView {
                    lane: lane.lane.as_str().to_owned(),
                    backlog: lane.records,
                    backlog_bytes: lane.bytes,
                    oldest_at: lane.oldest_at.map(|t| t.get()),
                    oldest_age_s: lane
                        .oldest_at
                        .map(|t| (now.get().saturating_sub(t.get()) / 1_000).max(0)),
                })
                .collect(),
            dead_letters,
            last_storage_pressure_at: last_storage_pressure.map(|t| t.get()),
        }
    }
}
