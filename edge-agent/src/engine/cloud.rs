//! What the sync loop reports to the engine ([`SyncInput`]), and how the engine applies it in
//! its transaction: acknowledged records leave the outbox, the cloud's commands are carried
//! out (each once, recorded in `cloud_commands` with its `CommandResult` record in the same
//! transaction), and a record the cloud refused is set aside as a dead letter.
//!
//! A cloud acknowledge, resolve or cancel goes through the same path as the dashboard's, so
//! the button's LED, the stream and the integrations hear of it alike; the actor is the cloud
//! user. The school stays authoritative: a command the alert's state does not allow is
//! rejected, and the rejection is what the cloud is told.
//!
//! [`outbox_upkeep`] holds the outbox to `[sync]`'s policy while the cloud is out of reach:
//! old snapshots thinned, and beyond the disk budget the oldest telemetry dropped, each run
//! replaced by a `Dropped` record so the cloud learns what it will never get.

use shared::UnixMillis;
use shared::alert::{Actor, Source};
use shared::ids::{Epoch, Seq};
use shared::sync::{Command, CommandBody, CommandOutcome, CommandResult, Lane, RecordBody};
use tokio::sync::oneshot;

use super::effects::Effects;
use super::state::State;
use super::{EngineGone, EngineHandle, StaffVerb};
use crate::config::SyncSettings;
use crate::store::{Batch, StoreError, StoredEvent, Topic};

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
        let actor = Actor::new(Source::Cloud, by);
        Ok(
            match self.staff(tx, alert, verb, &actor, None, now, effects)? {
                Ok(_) => CommandOutcome::Applied,
                Err(e) => CommandOutcome::Rejected {
                    reason: e.to_string(),
                },
            },
        )
    }
}

/// Bytes a stored outbox row costs beyond its body (key, epoch, time, kind, b-tree), for the
/// disk budget.
const ROW_OVERHEAD: u64 = 48;

/// Thins old telemetry, then enforces the disk budget (to 90 % of it, so the next records do
/// not trip it again at once). Returns the storage-pressure event it logged if it had to
/// drop.
pub(super) fn outbox_upkeep(
    tx: &Batch<'_>,
    policy: &SyncSettings,
    now: UnixMillis,
) -> Result<Option<StoredEvent>, StoreError> {
    let before = UnixMillis::new(
        now.get()
            .saturating_sub(i64::try_from(policy.thin_after.as_millis()).unwrap_or(i64::MAX)),
    );
    let thinned = tx.thin_telemetry(before, policy.thin_keep_every)?;
    if thinned > 0 {
        tracing::info!(thinned, "thinned old snapshots in the outbox");
    }
    let (rows, bytes) = tx.outbox_size()?;
    let size = bytes.saturating_add(rows.saturating_mul(ROW_OVERHEAD));
    if size <= policy.outbox_budget_bytes {
        return Ok(None);
    }
    let target = policy.outbox_budget_bytes / 10 * 9;
    let dropped = tx.drop_oldest_telemetry(size - target)?;
    tracing::warn!(
        outbox_bytes = size,
        budget_bytes = policy.outbox_budget_bytes,
        dropped,
        "storage pressure: the outbox outgrew its budget; dropped the oldest telemetry"
    );
    let data = serde_json::json!({
        "kind": "storage_pressure",
        "outbox_bytes": size,
        "budget_bytes": policy.outbox_budget_bytes,
        "dropped_records": dropped,
    })
    .to_string();
    Ok(Some(tx.append_event(now, Topic::System, data)?))
}

#[cfg(test)]
mod tests {
    use shared::{SchoolSnapshot, SnapshotCounts};

    use super::*;
    use crate::store::Store;

    #[test]
    fn upkeep_thins_then_holds_the_budget_with_telemetry_only() {
        let dir = tempfile::tempdir().unwrap();
        let school: shared::ids::SchoolId = "lincoln-high".parse().unwrap();
        let mut store = Store::create(
            &dir.path().join(crate::layout::DB_FILE),
            &school,
            UnixMillis::new(0),
        )
        .unwrap();
        store.start_epoch(UnixMillis::new(0)).unwrap();
        let now = UnixMillis::new(86_400_000);
        let tx = store.batch().unwrap();
        // A day of snapshots every 2 s (43,200) and one alert record in between.
        for i in 0..43_200i64 {
            let at = UnixMillis::new(i * 2_000);
            let counts = SnapshotCounts {
                students_total: 900,
                students_present: 800 + u32::try_from(i % 7).unwrap(),
                teachers_present: 40,
                active_alerts: 0,
                devices_online: 10,
                devices_offline: 0,
            };
            let body = RecordBody::Snapshot(SchoolSnapshot::new(school.clone(), at, counts));
            tx.append_outbox(at, &body).unwrap();
            if i == 100 {
                let result = RecordBody::CommandResult(CommandResult {
                    command_id: shared::ids::CommandId::new(),
                    outcome: CommandOutcome::Applied,
                });
                tx.append_outbox(at, &result).unwrap();
            }
        }
        // Thinning alone (one per 5 minutes after an hour) keeps it well under 1 MiB.
        let mut policy = SyncSettings {
            outbox_budget_bytes: 1024 * 1024,
            ..SyncSettings::default()
        };
        assert!(outbox_upkeep(&tx, &policy, now).unwrap().is_none());
        let (rows, _) = tx.outbox_size().unwrap();
        // 23 h thinned to 276 snapshots plus ~the runs between them, the last hour whole.
        assert!(rows < 2_500, "{rows} rows left");

        // A budget it cannot meet by thinning: the oldest telemetry goes, with an event.
        policy.outbox_budget_bytes = 64 * 1024;
        let event = outbox_upkeep(&tx, &policy, now)
            .unwrap()
            .expect("storage pressure");
        assert_eq!(event.topic, Topic::System);
        assert!(event.data.contains("storage_pressure"), "{}", event.data);
        let (rows, bytes) = tx.outbox_size().unwrap();
        assert!(
            bytes + rows * ROW_OVERHEAD <= policy.outbox_budget_bytes,
            "{rows} rows, {bytes} bytes"
        );
        tx.commit().unwrap();
        // The alert lane is untouched.
        let alerts = store.outbox(Lane::Alert).unwrap();
        assert_eq!(alerts.len(), 1);
        assert!(matches!(alerts[0].1.body, RecordBody::CommandResult(_)));
    }
}
