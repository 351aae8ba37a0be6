//! The engine's loop and its batches.
//!
//! [`Worker`] runs on the engine's thread: it waits for inputs or the next timer, takes
//! whatever else is waiting, and hands the lot to [`Core`], which applies it in one transaction
//! and acts only after the commit. At shutdown it drains the frames devices had already sent.
//!
//! [`Core`] is the synchronous part, without channels or threads: the store, the cached state
//! and the clock. Tests drive it directly with a manual clock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::effects::Effects;
use super::state::{STATUS_EVERY, State};
use super::{
    CommandError, Heartbeat, Input, MAX_BATCH, OutboxSignals, Request, SyncInput,
    TURN_AT_LEAST_EVERY,
};
use crate::bus::{SharedOutbound, Uplink};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, StoredEvent};

/// The actor: the core fed by its channels.
pub(super) struct Worker {
    pub(super) core: Core,
    pub(super) uplinks: mpsc::Receiver<Uplink>,
    pub(super) requests: mpsc::Receiver<Request>,
    pub(super) sync: mpsc::Receiver<SyncInput>,
    pub(super) shutdown: CancellationToken,
    pub(super) heartbeat: Arc<Heartbeat>,
}

impl Worker {
    pub(super) async fn run(&mut self) {
        loop {
            // Every turn is proof of life; an idle engine still turns every
            // TURN_AT_LEAST_EVERY, so only a turn that never ends lets the heartbeat age.
            self.heartbeat.beat();
            let deadline = self.core.state.next_deadline();
            let wait = match deadline {
                Some(at) => at
                    .duration_since(self.core.clock.now())
                    .unwrap_or(Duration::ZERO)
                    .min(TURN_AT_LEAST_EVERY),
                None => TURN_AT_LEAST_EVERY,
            };
            let mut inputs = Vec::new();
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                Some(request) = self.requests.recv() => inputs.push(Input::Request(request)),
                Some(report) = self.sync.recv() => inputs.push(Input::Sync(report)),
                Some(uplink) = self.uplinks.recv() => inputs.push(Input::Uplink(uplink)),
                () = tokio::time::sleep(wait) => {
                    // Woken only to beat: no transaction for nothing.
                    if deadline.is_none_or(|at| at > self.core.clock.now()) {
                        continue;
                    }
                }
            }
            // Whatever else is waiting joins this transaction; requests first, a person is
            // waiting on them.
            while inputs.len() < MAX_BATCH {
                match self.requests.try_recv() {
                    Ok(request) => inputs.push(Input::Request(request)),
                    Err(_) => break,
                }
            }
            while inputs.len() < MAX_BATCH {
                match self.sync.try_recv() {
                    Ok(report) => inputs.push(Input::Sync(report)),
                    Err(_) => break,
                }
            }
            while inputs.len() < MAX_BATCH {
                match self.uplinks.try_recv() {
                    Ok(uplink) => inputs.push(Input::Uplink(uplink)),
                    Err(_) => break,
                }
            }
            self.core.process(inputs);
        }
        self.drain().await;
        self.core.flush();
        tracing::info!("engine stopped");
    }

    /// At shutdown, after the gate has closed every connection: applies the frames devices had
    /// already sent (the gate acknowledged them) until none has arrived for a moment, so a
    /// stop loses no heartbeat or count. Bounded, so a stop always finishes.
    async fn drain(&mut self) {
        const QUIET: Duration = Duration::from_millis(50);
        const LONGEST: Duration = Duration::from_secs(2);
        let deadline = self.core.clock.elapsed() + LONGEST;
        let mut drained = 0usize;
        while self.core.clock.elapsed() < deadline {
            let first = match tokio::time::timeout(QUIET, self.uplinks.recv()).await {
                Ok(Some(uplink)) => uplink,
                Ok(None) | Err(_) => break,
            };
            let mut inputs = vec![Input::Uplink(first)];
            while inputs.len() < MAX_BATCH {
                match self.uplinks.try_recv() {
                    Ok(uplink) => inputs.push(Input::Uplink(uplink)),
                    Err(_) => break,
                }
            }
            drained += inputs.len();
            self.core.process(inputs);
        }
        if drained > 0 {
            tracing::info!(
                frames = drained,
                "applied the frames received before the stop"
            );
        }
    }
}

/// The store, the state it caches and the clock: applies batches of inputs.
pub(super) struct Core {
    store: Store,
    pub(super) state: State,
    pub(super) clock: SharedClock,
}

impl Core {
    /// Starts a new epoch in `store` and loads the state; returns the epoch with the core.
    pub(super) fn start(
        mut store: Store,
        config: &Config,
        outbound: SharedOutbound,
        events: broadcast::Sender<StoredEvent>,
        outbox: Arc<OutboxSignals>,
        metrics: Arc<Metrics>,
        clock: SharedClock,
    ) -> Result<(Core, shared::ids::Epoch), StoreError> {
        let epoch = store.start_epoch(clock.now())?;
        // The configured rooms, so profiles carry their building and floor.
        let tx = store.batch()?;
        tx.replace_rooms(&config.rooms)?;
        tx.commit()?;
        let state = State::load(
            &store,
            config,
            outbound,
            events,
            outbox,
            metrics,
            clock.now(),
        )?;
        Ok((
            Core {
                store,
                state,
                clock,
            },
            epoch,
        ))
    }

    /// Applies `inputs` and the timers due in one transaction, then acts on the result.
    pub(super) fn process(&mut self, mut inputs: Vec<Input>) {
        let now = self.clock.now();
        match self.apply_all(&mut inputs, now, true) {
            Ok(effects) => effects.execute(inputs),
            Err(e) => {
                tracing::error!(error = %e, inputs = inputs.len(), "batch failed; retrying one by one");
                self.reload();
                for input in inputs {
                    let mut one = vec![input];
                    match self.apply_all(&mut one, now, false) {
                        Ok(effects) => effects.execute(one),
                        Err(e) => {
                            tracing::error!(error = %e, "input refused: the database failed");
                            self.reload();
                            refuse(one, &e);
                        }
                    }
                }
            }
        }
    }

    /// Writes what is only in memory — the coalesced last_seen times — before the database
    /// closes.
    pub(super) fn flush(&mut self) {
        let flushed = self.store.batch().and_then(|tx| {
            self.state.telemetry.flush(&tx)?;
            tx.commit()
        });
        if let Err(e) = flushed {
            tracing::error!(error = %e, "cannot write device health on the way out");
        }
    }

    /// The store, for tests that check what a batch wrote.
    #[cfg(test)]
    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    fn apply_all(
        &mut self,
        inputs: &mut [Input],
        now: shared::UnixMillis,
        with_timers: bool,
    ) -> Result<Effects, StoreError> {
        let mut effects = self.state.effects();
        let began = self.clock.elapsed();
        let tx = self.store.batch()?;
        for (index, input) in inputs.iter_mut().enumerate() {
            match input {
                Input::Uplink(uplink) => self.state.uplink(&tx, uplink, now, &mut effects)?,
                Input::Request(request) => {
                    self.state.request(&tx, index, request, now, &mut effects)?;
                }
                Input::Sync(report) => self.state.sync(&tx, report, now, &mut effects)?,
            }
        }
        if with_timers && self.state.next_deadline().is_some_and(|due| due <= now) {
            self.state.timers(&tx, now, &mut effects)?;
        }
        let appended = tx.appended_lanes();
        tx.commit()?;
        self.state
            .metrics
            .engine_batch(self.clock.elapsed().saturating_sub(began).as_secs_f64());
        for lane in appended {
            self.state.outbox.lane(lane).notify_one();
        }
        self.state.status_dirty |= effects.status_changed;
        if self.state.status_dirty && now >= self.state.next_status {
            let status = self.state.status(now);
            effects.announcements.push(("status".to_owned(), status));
            self.state.status_dirty = false;
            self.state.next_status = now.saturating_add(STATUS_EVERY);
        }
        Ok(effects)
    }

    fn reload(&mut self) {
        if let Err(e) = self.state.reload(&self.store) {
            tracing::error!(error = %e, "cannot reload the engine's state from the database");
        }
    }
}

/// Answers the requests among `inputs` with the database's failure.
fn refuse(inputs: Vec<Input>, error: &StoreError) {
    for input in inputs {
        match input {
            Input::Request(Request::Transition { reply, .. }) => {
                let _ = reply.send(Err(CommandError::Internal(error.to_string())));
            }
            Input::Sync(report) => report.refuse(error),
            Input::Uplink(_) => {}
        }
    }
}
