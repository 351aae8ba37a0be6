//! One lane's loop: read the oldest records, send them, report the answer to the engine,
//! repeat. One request in flight per lane, so a lane's records reach the cloud in order; the
//! two lanes run side by side, so a telemetry backlog never delays an alert.
//!
//! - Alert records are sent as soon as the engine signals them. Telemetry is sent once a full
//!   batch is waiting or its oldest record has waited `batch_wait`.
//! - With nothing to send, the alert lane sends an empty batch every `heartbeat`: the cloud's
//!   liveness, and the way commands reach an idle gateway.
//! - On failure the lane waits with exponential backoff and jitter and tries the same records
//!   again; on `429` it waits as long as the cloud says; on `413` it halves its batches. A
//!   backoff is cut short when the other lane gets through (the link is back: both go at
//!   once) and, on the alert lane, when a new alert record is written: an alert never waits
//!   out a timer set before it existed.
//! - A request on the alert lane times out after at most 10 s, and when one has been in flight
//!   for over a second and a new alert is written, a second request with the newer records
//!   goes beside it: a connection that went dead without a reset (a black hole) never holds a
//!   new alert, and a slow link is not made slower by cancelled requests.
//! - A batch the cloud cannot read (400) is retried one record at a time; the record refused
//!   alone is handed to the engine as a dead letter and the lane moves on. Should the cloud
//!   refuse [`MAX_DEAD_LETTERS_IN_A_ROW`] records alone in a row, the fault is more likely the
//!   cloud's, and the lane backs off instead of emptying the outbox into the dead letters.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use shared::ids::{Epoch, GatewayId, SchoolId};
use shared::sync::{Lane, Record, SyncBatch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{Outcome, SyncClient};
use super::status::{LinkState, SyncStatus};
use crate::clock::SharedClock;
use crate::config::SyncSettings;
use crate::engine::{EngineHandle, OutboxSignals};
use crate::store::{Reader, StoreError};

/// Single records the cloud may refuse in a row before the lane suspects the cloud.
const MAX_DEAD_LETTERS_IN_A_ROW: u32 = 3;

/// The alert lane's request timeout, when `request_timeout_s` is longer: its batches are small,
/// and a request lost in a dead connection must not hold alerts for long.
const ALERT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// When an alert request has been in flight this long and a new alert is written, the lane
/// sends a second request beside it with the newer records, and takes whichever answers first
/// with an ack: a connection that went dead without a reset (a black hole) then holds no new
/// alert, and a link that is merely slow still delivers, because the first request is not
/// cancelled. Sending records twice is safe, the cloud merges each once.
const ALERT_HEDGE_AFTER: Duration = Duration::from_secs(1);

/// Everything one lane's loop needs.
pub(super) struct LaneLoop {
    pub(super) lane: Lane,
    pub(super) client: SyncClient,
    pub(super) engine: EngineHandle,
    pub(super) signals: Arc<OutboxSignals>,
    pub(super) db_path: Arc<std::path::PathBuf>,
    pub(super) school_id: SchoolId,
    pub(super) gateway_id: GatewayId,
    pub(super) epoch: Epoch,
    pub(super) settings: SyncSettings,
    pub(super) status: Arc<SyncStatus>,
    /// Raised by a lane whose request succeeds after failures.
    pub(super) recovered: Arc<tokio::sync::Notify>,
    pub(super) shutdown: CancellationToken,
    /// The wall time the status and the lag are stamped with.
    pub(super) clock: SharedClock,
}

/// What the lane does after an answer.
enum Next {
    /// Go on at once.
    Continue,
    /// Back off this long first (cut short if the link comes back or an alert is written).
    Wait(Duration),
    /// Wait this long, as the cloud asked.
    Hold(Duration),
}

impl LaneLoop {
    pub(super) async fn run(self) {
        let mut reader: Option<Reader> = None;
        let mut backoff = self.backoff();
        let mut limit = self.settings.batch_max_records;
        let mut one_at_a_time = false;
        let mut dead_in_a_row = 0u32;
        // The first heartbeat goes at once, so the cloud knows the gateway is back.
        let mut next_heartbeat = Instant::now();
        let mut waited_for_more = false;
        let mut failing = false;
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            let max = if one_at_a_time { 1 } else { limit };
            let pending = match self.read(&mut reader, max).await {
                Ok(pending) => pending,
                // A record the gateway itself cannot read (a damaged row) would hold the lane
                // for ever: it is set aside like one the cloud refused.
                Err(StoreError::UnreadableRecord { seq, reason, .. }) => {
                    let why = format!("unreadable on the gateway: {reason}");
                    tracing::error!(lane = %self.lane, %seq, %why, "setting an outbox record aside");
                    if let Err(e) = self.engine.dead_letter(self.lane, seq, why).await {
                        tracing::error!(lane = %self.lane, error = %e, "cannot set a record aside");
                        if self
                            .back_off(backoff_step(&mut backoff, &self.settings))
                            .await
                        {
                            break;
                        }
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(lane = %self.lane, error = %e, "cannot read the outbox");
                    if self
                        .back_off(backoff_step(&mut backoff, &self.settings))
                        .await
                    {
                        break;
                    }
                    continue;
                }
            };
            let (epoch, records) = match pending {
                Some(pending) => pending,
                None if self.lane == Lane::Alert && Instant::now() >= next_heartbeat => {
                    (self.epoch, Vec::new())
                }
                None => {
                    if self.idle(next_heartbeat).await {
                        break;
                    }
                    continue;
                }
            };
            // Telemetry fills its batch until its oldest record has waited `batch_wait`; a
            // backlog's records have waited long enough already. Alerts never wait.
            let short = records.len() < usize::try_from(max).unwrap_or(usize::MAX);
            if self.lane == Lane::Telemetry && short && !waited_for_more && !one_at_a_time {
                let waited = records.first().map_or(Duration::ZERO, |r| {
                    let ms = self.clock.now().get().saturating_sub(r.at.get());
                    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
                });
                if let Some(rest) = self.settings.batch_wait.checked_sub(waited)
                    && !rest.is_zero()
                {
                    waited_for_more = true;
                    if self.pause(rest).await {
                        break;
                    }
                    continue;
                }
            }
            waited_for_more = false;

            let batch = self.batch(epoch, records);
            let (outcome, batch) = self.send(batch, &mut reader, max).await;
            let sent = batch.records.len();
            let records = batch.records;
            // After an answer the next heartbeat is a period away; after a failure it is due
            // as soon as the backoff allows, so a returning link is noticed at the backoff's
            // pace.
            if self.lane == Lane::Alert {
                next_heartbeat = match outcome {
                    Outcome::Acked(_) => Instant::now() + self.settings.heartbeat,
                    _ => Instant::now(),
                };
            }
            let next = match outcome {
                Outcome::Acked(ack) => {
                    let last = records.last().map(|r| r.seq);
                    if last.is_some_and(|last| ack.acked_through < last) {
                        self.status.failed(
                            self.clock.now(),
                            LinkState::Down,
                            format!(
                                "the cloud acknowledged {} only through seq {} of {} sent",
                                self.lane,
                                ack.acked_through,
                                last.map_or(0, |s| s.get())
                            ),
                        );
                        Next::Wait(backoff_step(&mut backoff, &self.settings))
                    } else {
                        match self
                            .engine
                            .acked(self.lane, epoch, ack.acked_through, ack.commands)
                            .await
                        {
                            Ok(()) => {
                                self.status.succeeded(self.clock.now());
                                if std::mem::take(&mut failing) {
                                    tracing::info!(lane = %self.lane, "the cloud answers again");
                                    self.recovered.notify_waiters();
                                }
                                backoff = self.backoff();
                                one_at_a_time = false;
                                dead_in_a_row = 0;
                                tracing::debug!(lane = %self.lane, sent, through = %ack.acked_through, "synced");
                                Next::Continue
                            }
                            Err(e) => {
                                tracing::error!(lane = %self.lane, error = %e, "cannot record an acknowledgement");
                                Next::Wait(backoff_step(&mut backoff, &self.settings))
                            }
                        }
                    }
                }
                Outcome::Malformed { message } if sent > 1 => {
                    tracing::warn!(lane = %self.lane, sent, %message, "the cloud cannot read a batch; sending its records one at a time");
                    one_at_a_time = true;
                    Next::Continue
                }
                Outcome::Malformed { message } => {
                    self.status
                        .failed(self.clock.now(), LinkState::Down, message.clone());
                    match records.first() {
                        Some(record) if dead_in_a_row < MAX_DEAD_LETTERS_IN_A_ROW => {
                            dead_in_a_row += 1;
                            match self
                                .engine
                                .dead_letter(self.lane, record.seq, message)
                                .await
                            {
                                Ok(()) => Next::Continue,
                                Err(e) => {
                                    tracing::error!(lane = %self.lane, error = %e, "cannot set a record aside");
                                    Next::Wait(backoff_step(&mut backoff, &self.settings))
                                }
                            }
                        }
                        _ => Next::Wait(backoff_step(&mut backoff, &self.settings)),
                    }
                }
                Outcome::TooLarge { message } => {
                    limit = u32::try_from(sent / 2).unwrap_or(limit).max(1);
                    tracing::warn!(lane = %self.lane, %message, limit, "batch too large; sending smaller ones");
                    if sent <= 1 {
                        self.status
                            .failed(self.clock.now(), LinkState::Down, message);
                        Next::Wait(backoff_step(&mut backoff, &self.settings))
                    } else {
                        Next::Continue
                    }
                }
                Outcome::TooFast { retry_after } => Next::Hold(retry_after),
                Outcome::Gap { expected } => {
                    let first = records.first().map_or(0, |r| r.seq.get());
                    let message = format!(
                        "the cloud expects {} seq {expected} of epoch {epoch}, but this \
                         gateway's oldest unacknowledged record is seq {first}: the cloud has \
                         lost records it acknowledged",
                        self.lane
                    );
                    tracing::error!(lane = %self.lane, %message);
                    self.status
                        .failed(self.clock.now(), LinkState::Down, message);
                    Next::Wait(backoff_step(&mut backoff, &self.settings))
                }
                Outcome::Refused { status, message } => {
                    tracing::warn!(lane = %self.lane, %status, %message, "the cloud refuses this gateway");
                    self.status
                        .failed(self.clock.now(), LinkState::Refused, message);
                    Next::Wait(backoff_step(&mut backoff, &self.settings))
                }
                Outcome::Failed { message } => {
                    tracing::debug!(lane = %self.lane, %message, "sync failed");
                    self.status
                        .failed(self.clock.now(), LinkState::Down, message);
                    Next::Wait(backoff_step(&mut backoff, &self.settings))
                }
            };
            let stopping = match next {
                Next::Continue => false,
                Next::Wait(wait) => {
                    failing = true;
                    self.back_off(wait).await
                }
                Next::Hold(wait) => self.pause(wait).await,
            };
            if stopping {
                break;
            }
        }
    }

    /// Exponential from `backoff_min`, each wait drawn from `[d, 2d)`, so capping `d` at half
    /// of `backoff_max` keeps every wait within it.
    fn backoff(&self) -> backon::ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(self.settings.backoff_min)
            .with_max_delay((self.settings.backoff_max / 2).max(self.settings.backoff_min))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }

    fn batch(&self, epoch: Epoch, records: Vec<Record>) -> SyncBatch {
        SyncBatch {
            gateway_id: self.gateway_id.clone(),
            school_id: self.school_id.clone(),
            epoch,
            lane: self.lane,
            records,
        }
    }

    /// Sends `batch`; on the alert lane, hedged (see [`ALERT_HEDGE_AFTER`]). Returns the
    /// outcome with the batch it answers.
    async fn send(
        &self,
        batch: SyncBatch,
        reader: &mut Option<Reader>,
        max: u32,
    ) -> (Outcome, SyncBatch) {
        let stopping = || Outcome::Failed {
            message: "stopping".into(),
        };
        if self.lane != Lane::Alert {
            // A request cut off by the stop is sent again at the next start; the cloud merges
            // each record once.
            let request = self.client.send_within(&batch, None);
            return tokio::select! {
                outcome = request => (outcome, batch),
                () = self.shutdown.cancelled() => (stopping(), batch),
            };
        }
        let timeout = Some(self.settings.request_timeout.min(ALERT_REQUEST_TIMEOUT));
        let first = self.client.send_within(&batch, timeout);
        tokio::pin!(first);
        let hedge_due = async {
            tokio::time::sleep(ALERT_HEDGE_AFTER).await;
            self.signals.lane(Lane::Alert).notified().await;
        };
        tokio::select! {
            outcome = &mut first => return (outcome, batch),
            () = self.shutdown.cancelled() => return (stopping(), batch),
            () = hedge_due => {}
        }
        // A new alert while the request hangs: send what the lane holds now beside it.
        let newer = match self.read(reader, max).await {
            Ok(Some((epoch, records))) if epoch == batch.epoch => self.batch(epoch, records),
            _ => batch.clone(),
        };
        tracing::info!(lane = %self.lane, records = newer.records.len(), "a request hangs and a new alert waits; sending beside it");
        let second = self.client.send_fresh(&newer, timeout);
        tokio::pin!(second);
        // The first acknowledgement wins; a failure waits for the other request.
        let mut first_failed: Option<Outcome> = None;
        let mut second_failed: Option<Outcome> = None;
        loop {
            tokio::select! {
                outcome = &mut first, if first_failed.is_none() => match outcome {
                    Outcome::Acked(_) => return (outcome, batch),
                    failure => match second_failed.take() {
                        Some(_) => return (failure, batch),
                        None => first_failed = Some(failure),
                    },
                },
                outcome = &mut second, if second_failed.is_none() => match outcome {
                    Outcome::Acked(_) => return (outcome, newer),
                    failure => match first_failed.take() {
                        Some(_) => return (failure, newer),
                        None => second_failed = Some(failure),
                    },
                },
                () = self.shutdown.cancelled() => return (stopping(), batch),
            }
        }
    }

    /// The oldest records of the lane, read on the blocking pool with a read-only connection
    /// kept between calls.
    async fn read(
        &self,
        reader: &mut Option<Reader>,
        max: u32,
    ) -> Result<Option<(Epoch, Vec<Record>)>, StoreError> {
        let current = match reader.take() {
            Some(r) => r,
            None => Reader::open(&self.db_path)?,
        };
        let lane = self.lane;
        let max_bytes = self.settings.batch_max_bytes;
        let (back, result) = tokio::task::spawn_blocking(move || {
            let result = current.outbox_batch(lane, max, max_bytes);
            (current, result)
        })
        .await
        .map_err(|e| StoreError::BadValue {
            what: "outbox read",
            value: e.to_string(),
        })?;
        *reader = Some(back);
        result
    }

    /// Waits for the engine to append to this lane (or, on the alert lane, for the next
    /// heartbeat). `true` if the agent is stopping.
    async fn idle(&self, next_heartbeat: Instant) -> bool {
        let heartbeat = async {
            if self.lane == Lane::Alert {
                tokio::time::sleep_until(next_heartbeat).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = self.shutdown.cancelled() => true,
            () = self.signals.lane(self.lane).notified() => false,
            () = heartbeat => false,
        }
    }

    /// Backs off for `wait`, or less if the other lane gets through or (on the alert lane) an
    /// alert record is written; `true` if the agent is stopping.
    async fn back_off(&self, wait: Duration) -> bool {
        let new_alert = async {
            if self.lane == Lane::Alert {
                self.signals.lane(Lane::Alert).notified().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = self.shutdown.cancelled() => true,
            () = tokio::time::sleep(wait) => false,
            () = self.recovered.notified() => false,
            () = new_alert => false,
        }
    }

    /// Sleeps `wait`; `true` if the agent is stopping.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = self.shutdown.cancelled() => true,
            () = tokio::time::sleep(wait) => false,
        }
    }
}

fn backoff_step(backoff: &mut backon::ExponentialBackoff, settings: &SyncSettings) -> Duration {
    backoff
        .next()
        .unwrap_or(settings.backoff_max)
        .min(settings.backoff_max)
}
