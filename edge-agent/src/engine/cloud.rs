//! What the sync loop reports to the engine ([`SyncInput`]), and how the engine applies it in
//! its transaction: acknowledged records leave the outbox, the cloud's commands are carried
//! out (each once, recorded in `cloud_commands` with its `CommandResult` record in the same
//! transaction), and a record the cloud refused is set aside as a dead letter.
//!
//! A cloud acknowledge, resolve or cancel goes through the same path as the dashboard's, so
//! the button's LED, the stream and the integrations hear of it alike; the actor is the cloud
//! user. The school stays authoritative: a command the alert's state does not allow is
//! rejected, and the rejection is what the cloud is told.

use shared::UnixMillis;
use shared::alert::{Actor, Source};
use shared::ids::{Epoch, Seq};
use shared::sync::{Command, CommandBody, CommandOutcome, CommandResult, Lane, RecordBody};
use tokio::sync::oneshot;

use super::{Effects, EngineGone, EngineHandle, StaffVerb, State};
use crate::store::{Batch, StoreError};

/// A report from the sync loop.
#[derive(Debug)]
pub enum SyncInput {
    /// The cloud stored `lane`'s records of `epoch` through `through` and sent `commands`.
    Acked {
        lane: Lane,
        epoch: Epoch,
        through: Seq,
        commands: Vec<Command>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// The cloud refused the record at `seq` of `lane`, sent alone, as malformed.
    DeadLetter {
        lane: Lane,
        seq: Seq,
        reason: String,
        done: oneshot::Sender<Result<(), String>>,
    },
}

impl SyncInput {
    /// Committed.
    pub(super) fn done(self) {
        let _ = self.into_done().send(Ok(()));
    }

    /// Not committed: the database failed.
    pub(super) fn refuse(self, error: &StoreError) {
        let _ = self.into_done().send(Err(error.to_string()));
    }

    fn into_done(self) -> oneshot::Sender<Result<(), String>> {
        match self {
            SyncInput::Acked { done, .. } | SyncInput::DeadLetter { done, .. } => done,
        }
    }
}

/// Why a report did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum SyncReportError {
    #[error(transparent)]
    Engine(#[from] EngineGone),
    #[error("the engine could not store it: {0}")]
    Store(String),
}

impl EngineHandle {
    /// Reports an acknowledgement (with the commands it carried) and waits until the engine
    /// has committed its effects.
    pub async fn acked(
        &self,
        lane: Lane,
        epoch: Epoch,
        through: Seq,
        commands: Vec<Command>,
    ) -> Result<(), SyncReportError> {
        let (done, answer) = oneshot::channel();
        self.report(
            SyncInput::Acked {
                lane,
                epoch,
                through,
                commands,
                done,
            },
            answer,
        )
        .await
    }

    /// Reports a record the cloud refused and waits until it is set aside.
    pub async fn dead_letter(
        &self,
        lane: Lane,
        seq: Seq,
        reason: String,
    ) -> Result<(), SyncReportError> {
        let (done, answer) = oneshot::channel();
        self.report(
            SyncInput::DeadLetter {
                lane,
                seq,
                reason,
                done,
            },
            answer,
        )
        .await
    }

    async fn report(
        &self,
        input: SyncInput,
        answer: oneshot::Receiver<Result<(), String>>,
    ) -> Result<(), SyncReportError> {
        self.sync
            .send(input)
            .await
            .map_err(|_| EngineGone::Stopped)?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SyncReportError::Store(e)),
            Err(_) => Err(EngineGone::Stopped.into()),
        }
    }
}

impl State {
    pub(super) fn sync(
        &mut self,
        tx: &Batch<'_>,
        report: &SyncInput,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        match report {
            SyncInput::Acked {
                lane,
                epoch,
                through,
                commands,
                ..
            } => {
                tx.ack_outbox(*lane, *epoch, *through)?;
                for command in commands {
                    self.command(tx, command, now, effects)?;
                }
                Ok(())
            }
            SyncInput::DeadLetter {
                lane, seq, reason, ..
            } => {
                if tx.dead_letter(*lane, *seq, reason, now)? {
                    tracing::error!(%lane, %seq, reason, "the cloud refused a record; moved it to the dead letters");
                }
                Ok(())
            }
        }
    }

    /// Carries out `command` unless it was already, and queues its result for the cloud.
    fn command(
        &mut self,
        tx: &Batch<'_>,
        command: &Command,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        if tx.command_done(&command.id)? {
            return Ok(());
        }
        let (kind, outcome) = match &command.body {
            CommandBody::Acknowledge { alert_id, by } => (
                "acknowledge",
                self.cloud_transition(tx, alert_id, StaffVerb::Acknowledge, by, now, effects)?,
            ),
            CommandBody::Resolve { alert_id, by } => (
                "resolve",
                self.cloud_transition(tx, alert_id, StaffVerb::Resolve, by, now, effects)?,
            ),
            CommandBody::Cancel { alert_id, by } => (
                "cancel",
                self.cloud_transition(tx, alert_id, StaffVerb::Cancel, by, now, effects)?,
            ),
            CommandBody::RevokeDevice { device_id } => (
                "revoke_device",
                CommandOutcome::Rejected {
                    reason: format!(
                        "this gateway does not revoke devices on the cloud's word yet; run \
                         `edge-agent device revoke {device_id}` on the gateway"
                    ),
                },
            ),
        };
        tracing::info!(command = %command.id, kind, ?outcome, "carried out a cloud command");
        tx.record_command(&command.id, kind, &outcome, now)?;
        tx.append_outbox(
            now,
            &RecordBody::CommandResult(CommandResult {
                command_id: command.id,
                outcome,
            }),
        )?;
        Ok(())
    }

    fn cloud_transition(
        &mut self,
        tx: &Batch<'_>,
        alert: &shared::ids::AlertId,
        verb: StaffVerb,
        by: &str,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<CommandOutcome, StoreError> {
        let open_before = self.alerts.open_count();
        let actor = Actor::new(Source::Cloud, by);
        let outcome = self
            .alerts
            .staff(tx, alert, verb, &actor, None, now, effects)?;
        if self.alerts.open_count() != open_before {
            self.telemetry.changed(now);
        }
        Ok(match outcome {
            Ok(_) => CommandOutcome::Applied,
            Err(e) => CommandOutcome::Rejected {
                reason: e.to_string(),
            },
        })
    }
}
