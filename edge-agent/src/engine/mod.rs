//! The engine: the one actor that owns the gateway's state (alerts, device health, occupancy
//! and snapshots) and its database connection for writing.
//!
//! It runs on its own OS thread with a single-threaded tokio runtime, so its SQLite calls (and
//! their fsyncs) never block the tokio workers that serve devices and the dashboard. Inputs are
//! a closed set ([`Input`]): device uplinks, requests from the local API, and its own timers.
//!
//! **Group commit.** The engine takes whatever inputs are waiting (up to [`MAX_BATCH`]), applies
//! them all in one transaction, commits once, and only then acts: a device gets its `PressAck`
//! and the dashboard its event only for state that is on disk. Under load many presses share
//! one fsync; alone, a press pays for one.
//!
//! A batch that fails to commit is rolled back, the cached state is reloaded from the database,
//! and its inputs are retried one transaction each, so one poisonous input cannot block the
//! others. Whatever still fails is refused to its sender (a device retransmits its press).
//!
//! - `alerts`: presses, cancels, staff transitions and escalation, via `shared::alert::step`;
//! - `telemetry`: device health, room counts and school snapshots;
//! - `press_map`: which alert a press pattern raises;
//! - `cloud`: what the sync loop reports: acknowledgements (the outbox shrinks), commands from
//!   the cloud (carried out once, through the same paths as the dashboard's), dead letters;
//! - `heartbeat`: the loop's proof of life, renewed on every turn (at least every
//!   [`TURN_AT_LEAST_EVERY`]), which the service watchdog reads.

mod alerts;
mod cloud;
mod heartbeat;
mod press_map;
mod telemetry;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use firmware_protocol::{
    Downlink, Frame, MAX_FRAME_LEN, PressAck, Uplink as UplinkBody, decode_uplink, encode_downlink,
};
use shared::UnixMillis;
use shared::alert::Actor;
use shared::ids::{AlertId, DeviceId};
use shared::sync::Lane;
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::broker::{Downlinks, Uplink};
use crate::config::Config;
use crate::metrics::{Metrics, UplinkKind};
use crate::store::{DeviceProfile, DeviceState, Store, StoreError, StoredEvent};
use crate::view::AlertView;

pub use alerts::{CommandError, StaffVerb};
pub use cloud::SyncInput;
pub use heartbeat::{Heartbeat, TURN_AT_LEAST_EVERY};
pub use press_map::{
    DEFAULT as DEFAULT_PRESS_MAP, PressMapError, format_press_map, parse_press_map,
};

/// Most inputs applied in one transaction.
pub const MAX_BATCH: usize = 1_024;
/// Requests from the API waiting for the engine before callers are told it is busy.
const REQUEST_BUFFER: usize = 256;
/// Reports from the sync loop waiting for the engine (one per lane is the most in flight).
const SYNC_BUFFER: usize = 8;
/// Events buffered for slow stream subscribers before they must catch up from the database.
const EVENT_BUFFER: usize = 4_096;

/// How the engine behaves; from `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSettings {
    /// An alert nobody acknowledged escalates after this long.
    pub escalate_after: Duration,
    /// The presser may cancel their own alert within this long after it was raised.
    pub cancel_window: Duration,
    /// Which alert each press pattern raises, unless a device has its own mapping.
    pub press_map: firmware_protocol::PressMap,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            escalate_after: Duration::from_secs(60),
            cancel_window: Duration::from_secs(10),
            press_map: DEFAULT_PRESS_MAP,
        }
    }
}

/// A request from the local API.
#[derive(Debug)]
pub enum Request {
    /// Acknowledge, resolve or cancel an alert.
    Transition {
        /// The alert.
        alert: AlertId,
        /// What to do.
        verb: StaffVerb,
        /// Who asks.
        actor: Actor,
        /// A note for the log.
        note: Option<String>,
        /// The alert after the change (committed), or why not.
        reply: oneshot::Sender<Result<AlertView, CommandError>>,
    },
}

/// The engine's inputs, a closed set.
#[derive(Debug)]
enum Input {
    Uplink(Uplink),
    Request(Request),
    Sync(SyncInput),
}

/// What the rest of the agent holds to talk to the engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    requests: mpsc::Sender<Request>,
    sync: mpsc::Sender<SyncInput>,
    events: broadcast::Sender<StoredEvent>,
    outbox: Arc<OutboxSignals>,
    epoch: shared::ids::Epoch,
    heartbeat: Arc<Heartbeat>,
}

/// Woken after every commit that appended to a lane of the outbox, so the sync loop sends at
/// once instead of polling. A `Notify` keeps one permit: a commit while the loop is busy is
/// not lost.
#[derive(Debug, Default)]
pub struct OutboxSignals {
    alert: Notify,
    telemetry: Notify,
}

impl OutboxSignals {
    /// The signal of `lane`.
    pub fn lane(&self, lane: Lane) -> &Notify {
        match lane {
            Lane::Alert => &self.alert,
            Lane::Telemetry => &self.telemetry,
        }
    }
}

/// Why a request did not reach the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineGone {
    #[error("the alert engine is busy; try again")]
    Busy,
    #[error("the alert engine has stopped")]
    Stopped,
}

impl EngineHandle {
    /// Hands `request` to the engine without waiting for room.
    pub fn send(&self, request: Request) -> Result<(), EngineGone> {
        self.requests.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => EngineGone::Busy,
            mpsc::error::TrySendError::Closed(_) => EngineGone::Stopped,
        })
    }

    /// Every event the engine commits from now on (the stream's live part).
    pub fn subscribe(&self) -> broadcast::Receiver<StoredEvent> {
        self.events.subscribe()
    }

    /// The signals the engine raises when it appends to the outbox.
    pub fn outbox_signals(&self) -> Arc<OutboxSignals> {
        Arc::clone(&self.outbox)
    }

    /// The epoch this run's outbox records are written under.
    pub fn epoch(&self) -> shared::ids::Epoch {
        self.epoch
    }

    /// When the engine's loop last turned (see [`Heartbeat`]).
    pub fn heartbeat(&self) -> Arc<Heartbeat> {
        Arc::clone(&self.heartbeat)
    }
}

/// A running engine: its handle and its thread.
#[derive(Debug)]
pub struct Engine {
    /// For the API.
    pub handle: EngineHandle,
    thread: std::thread::JoinHandle<()>,
}

impl Engine {
    /// Starts the engine on its own thread, under a new epoch (see `shared::ids::Epoch`: every
    /// run of the engine writes its outbox records under one of its own). It stops when
    /// `shutdown` is cancelled (after committing what it has taken in) or when the uplink
    /// channel closes.
    pub fn start(
        mut store: Store,
        config: &Config,
        uplinks: mpsc::Receiver<Uplink>,
        downlinks: Downlinks,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<Engine, EngineError> {
        let (requests_tx, requests) = mpsc::channel(REQUEST_BUFFER);
        let (sync_tx, sync) = mpsc::channel(SYNC_BUFFER);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let outbox = Arc::new(OutboxSignals::default());
        let epoch = store.start_epoch(UnixMillis::now())?;
        let heartbeat = Arc::new(Heartbeat::new());
        // The configured rooms, so profiles carry their building and floor.
        let tx = store.batch()?;
        tx.replace_rooms(&config.rooms)?;
        tx.commit()?;
        let state = State::load(
            &store,
            config,
            downlinks,
            events.clone(),
            outbox.clone(),
            metrics,
        )?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(EngineError::Thread)?;
        let beats = Arc::clone(&heartbeat);
        let thread = std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                let mut actor = Worker {
                    store,
                    state,
                    uplinks,
                    requests,
                    sync,
                    shutdown,
                    heartbeat: beats,
                };
                runtime.block_on(actor.run());
            })
            .map_err(EngineError::Thread)?;
        Ok(Engine {
            handle: EngineHandle {
                requests: requests_tx,
                sync: sync_tx,
                events,
                outbox,
                epoch,
                heartbeat,
            },
            thread,
        })
    }

    /// Waits for the engine's thread to finish (after shutdown was cancelled).
    pub async fn join(self) {
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the engine thread: {0}")]
    Thread(std::io::Error),
}

/// The actor: the store plus the state it caches, fed by its channels.
struct Worker {
    store: Store,
    state: State,
    uplinks: mpsc::Receiver<Uplink>,
    requests: mpsc::Receiver<Request>,
    sync: mpsc::Receiver<SyncInput>,
    shutdown: CancellationToken,
    heartbeat: Arc<Heartbeat>,
}

impl Worker {
    async fn run(&mut self) {
        loop {
            // Every turn is proof of life; an idle engine still turns every
            // TURN_AT_LEAST_EVERY, so only a turn that never ends lets the heartbeat age.
            self.heartbeat.beat();
            let deadline = self.state.next_deadline();
            let wait = match deadline {
                Some(at) => at
                    .duration_since(UnixMillis::now())
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
                    if deadline.is_none_or(|at| at > UnixMillis::now()) {
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
            self.process(inputs);
        }
        self.drain().await;
        // What is only in memory — the coalesced last_seen times — is written before the
        // database closes.
        let flushed = self.store.batch().and_then(|tx| {
            self.state.telemetry.flush(&tx)?;
            tx.commit()
        });
        if let Err(e) = flushed {
            tracing::error!(error = %e, "cannot write device health on the way out");
        }
        tracing::info!("engine stopped");
    }

    /// At shutdown, after the gate has closed every connection: applies the frames devices had
    /// already sent (the gate acknowledged them) until none has arrived for a moment, so a
    /// stop loses no heartbeat or count. Bounded, so a stop always finishes.
    async fn drain(&mut self) {
        const QUIET: Duration = Duration::from_millis(50);
        const LONGEST: Duration = Duration::from_secs(2);
        let deadline = tokio::time::Instant::now() + LONGEST;
        let mut drained = 0usize;
        while tokio::time::Instant::now() < deadline {
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
            self.process(inputs);
        }
        if drained > 0 {
            tracing::info!(
                frames = drained,
                "applied the frames received before the stop"
            );
        }
    }

    /// Applies `inputs` and the timers due in one transaction, then acts on the result.
    fn process(&mut self, mut inputs: Vec<Input>) {
        let now = UnixMillis::now();
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

    fn apply_all(
        &mut self,
        inputs: &mut [Input],
        now: UnixMillis,
        with_timers: bool,
    ) -> Result<Effects, StoreError> {
        let mut effects = Effects::new(self.state.downlinks.clone(), self.state.events.clone());
        let began = std::time::Instant::now();
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
            .engine_batch(began.elapsed().as_secs_f64());
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

/// The most often `hallwatch/status` is published (every alert change is on its own topic at
/// once; the summary of a school with many open alerts is large, and a burst of changes must
/// not become a burst of summaries).
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// The most open alerts listed in `hallwatch/status`; `active_alerts` counts them all.
const STATUS_ALERTS: usize = 100;

/// How often old stream events, snapshots and presses are deleted.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3_600);
/// How long the stream's event log reaches back (a dashboard offline longer reloads), and the
/// fewest events kept regardless.
const KEEP_EVENTS_FOR: Duration = Duration::from_secs(7 * 24 * 3_600);
const KEEP_EVENTS_AT_LEAST: u32 = 10_000;
/// How long snapshots and press records are kept on the gateway (the cloud keeps the history).
const KEEP_HISTORY_FOR: Duration = Duration::from_secs(31 * 24 * 3_600);

/// How often the outbox is held to its policy (thinning, disk budget).
const OUTBOX_UPKEEP_EVERY: Duration = Duration::from_secs(60);

/// How often the device profiles are re-read, to notice devices revoked while the agent runs
/// (new devices are noticed at their first frame).
const REFRESH_DEVICES_EVERY: Duration = Duration::from_secs(30);

/// The engine's cached state.
struct State {
    alerts: alerts::Alerts,
    telemetry: telemetry::Telemetry,
    /// Shared, so the hot path (every uplink) takes a reference count, not a copy.
    devices: HashMap<DeviceId, Arc<DeviceProfile>>,
    downlinks: Downlinks,
    events: broadcast::Sender<StoredEvent>,
    outbox: Arc<OutboxSignals>,
    /// The outbox's retention policy (`[sync]`).
    sync: crate::config::SyncSettings,
    next_outbox_upkeep: UnixMillis,
    next_refresh: UnixMillis,
    next_housekeeping: UnixMillis,
    /// `hallwatch/status` needs publishing, and not before `next_status`: each alert change
    /// has its own message at once, the summary follows at most once per [`STATUS_EVERY`].
    status_dirty: bool,
    next_status: UnixMillis,
    /// Uplinks are counted here, once each, as they are applied.
    metrics: Arc<Metrics>,
}

impl State {
    fn load(
        store: &Store,
        config: &Config,
        downlinks: Downlinks,
        events: broadcast::Sender<StoredEvent>,
        outbox: Arc<OutboxSignals>,
        metrics: Arc<Metrics>,
    ) -> Result<State, StoreError> {
        let now = UnixMillis::now();
        let devices = profiles(store)?;
        let mut state = State {
            alerts: alerts::Alerts::new(config.alerts.clone()),
            telemetry: telemetry::Telemetry::load(store, config, &devices, now)?,
            devices,
            downlinks,
            events,
            outbox,
            sync: config.sync,
            next_outbox_upkeep: now,
            next_refresh: now.saturating_add(REFRESH_DEVICES_EVERY),
            next_housekeeping: now,
            status_dirty: true,
            next_status: now,
            metrics,
        };
        state.alerts.load(store.open_alerts()?);
        Ok(state)
    }

    /// Re-reads what a failed transaction may have left the cache disagreeing with. Health and
    /// counts are re-derived from the next uplinks; alerts must match the database exactly.
    fn reload(&mut self, store: &Store) -> Result<(), StoreError> {
        self.alerts.load(store.open_alerts()?);
        self.devices = profiles(store)?;
        Ok(())
    }

    /// The school summary integrations read on `hallwatch/status`: the counts, and the most
    /// severe open alerts (then the oldest), at most [`STATUS_ALERTS`] of them.
    fn status(&self, now: UnixMillis) -> String {
        let mut open: Vec<&crate::store::AlertRow> = self.alerts.open().collect();
        open.sort_by_key(|a| (std::cmp::Reverse(a.severity), a.created_at));
        let active = u32::try_from(open.len()).unwrap_or(u32::MAX);
        let alerts: Vec<AlertView> = open
            .into_iter()
            .take(STATUS_ALERTS)
            .map(AlertView::from)
            .collect();
        let (online, offline) = self.telemetry.device_counts();
        let highest = self.alerts.open().map(|a| a.severity).max();
        crate::view::to_json(&crate::view::StatusView {
            school_id: self.telemetry.school().to_string(),
            at: now.get(),
            active_alerts: active,
            highest_severity: highest.map(|s| s.as_str()),
            alerts,
            devices_online: online,
            devices_offline: offline,
        })
    }

    fn next_deadline(&self) -> Option<UnixMillis> {
        let mut next = self
            .telemetry
            .next_deadline()
            .min(self.next_refresh)
            .min(self.next_housekeeping)
            .min(self.next_outbox_upkeep);
        if self.status_dirty {
            next = next.min(self.next_status);
        }
        Some(self.alerts.next_deadline().map_or(next, |a| a.min(next)))
    }

    /// The device's profile, re-read from the database once when it is not cached (devices
    /// are registered by `edge-agent device add` while the agent runs).
    fn device(
        &mut self,
        tx: &crate::store::Batch<'_>,
        id: &DeviceId,
    ) -> Result<Option<Arc<DeviceProfile>>, StoreError> {
        if !self.devices.contains_key(id)
            && let Some(profile) = tx.device_profile(id)?
        {
            self.telemetry.registered(&profile);
            self.devices.insert(id.clone(), Arc::new(profile));
        }
        Ok(self.devices.get(id).cloned())
    }

    fn uplink(
        &mut self,
        tx: &crate::store::Batch<'_>,
        uplink: &Uplink,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        let Some(device) = self.device(tx, &uplink.device_id)? else {
            tracing::warn!(device = %uplink.device_id, "refused an uplink from an unregistered device");
            return Ok(());
        };
        if device.state == DeviceState::Revoked {
            tracing::warn!(device = %device.id, "refused an uplink from a revoked device");
            return Ok(());
        }
        if uplink.last_will {
            self.metrics.uplink(UplinkKind::LastWill);
            return self.telemetry.last_will(tx, &device, now, effects);
        }
        let frame = match decode_uplink(&uplink.payload) {
            Ok(frame) => frame,
            Err(e) => {
                self.metrics.uplink(UplinkKind::Undecodable);
                // Not even proof of life: a device that sends garbage is not healthy.
                tracing::warn!(device = %device.id, error = %e, "refused an undecodable uplink");
                return Ok(());
            }
        };
        self.metrics.uplink(match frame.body {
            UplinkBody::ButtonPress(_) => UplinkKind::ButtonPress,
            UplinkBody::CancelRequest(_) => UplinkKind::CancelRequest,
            UplinkBody::Heartbeat(_) => UplinkKind::Heartbeat,
            UplinkBody::Occupancy(_) => UplinkKind::Occupancy,
        });
        self.telemetry
            .uplink(tx, &device, &frame.body, now, effects)?;
        let open_before = self.alerts.open_count();
        match frame.body {
            UplinkBody::ButtonPress(press) => {
                self.alerts
                    .press(tx, &device, frame.boot, press, now, effects)?;
            }
            UplinkBody::CancelRequest(cancel) => {
                self.alerts
                    .device_cancel(tx, &device, cancel, now, effects)?;
            }
            UplinkBody::Heartbeat(_) | UplinkBody::Occupancy(_) => {}
        }
        if self.alerts.open_count() != open_before {
            self.telemetry.changed(now);
        }
        Ok(())
    }

    fn request(
        &mut self,
        tx: &crate::store::Batch<'_>,
        index: usize,
        request: &Request,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        match request {
            Request::Transition {
                alert,
                verb,
                actor,
                note,
                ..
            } => {
                let outcome = self.staff(tx, alert, *verb, actor, note.as_deref(), now, effects)?;
                effects.replies.push((index, outcome));
                Ok(())
            }
        }
    }

    /// A person's acknowledge, resolve or cancel, from the dashboard or the cloud; a change in
    /// the number of open alerts is a change for the next snapshot.
    #[allow(clippy::too_many_arguments)]
    fn staff(
        &mut self,
        tx: &crate::store::Batch<'_>,
        alert: &AlertId,
        verb: StaffVerb,
        actor: &Actor,
        note: Option<&str>,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<Result<AlertView, CommandError>, StoreError> {
        let open_before = self.alerts.open_count();
        let outcome = self
            .alerts
            .staff(tx, alert, verb, actor, note, now, effects)?;
        if self.alerts.open_count() != open_before {
            self.telemetry.changed(now);
        }
        Ok(outcome)
    }

    fn timers(
        &mut self,
        tx: &crate::store::Batch<'_>,
        now: UnixMillis,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        if now >= self.next_refresh {
            for (id, profile) in tx.device_profiles()?.into_iter().map(|d| (d.id.clone(), d)) {
                if self.devices.get(&id).map(|d| d.state) != Some(profile.state) {
                    self.telemetry.registered(&profile);
                }
                self.devices.insert(id, Arc::new(profile));
            }
            self.next_refresh = now.saturating_add(REFRESH_DEVICES_EVERY);
        }
        if now >= self.next_housekeeping {
            housekeeping(tx, now)?;
            self.next_housekeeping = now.saturating_add(HOUSEKEEPING_EVERY);
        }
        if now >= self.next_outbox_upkeep {
            // A failure here (a damaged row, say) is logged and undone; it must not cost
            // the batch its presses.
            match tx.attempt(|tx| cloud::outbox_upkeep(tx, &self.sync, now))? {
                Ok(Some(event)) => effects.stored.push(event),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "outbox upkeep failed; will try again"),
            }
            self.next_outbox_upkeep = now.saturating_add(OUTBOX_UPKEEP_EVERY);
        }
        self.alerts.escalate_due(tx, now, effects)?;
        let active = u32::try_from(self.alerts.open_count()).unwrap_or(u32::MAX);
        self.telemetry
            .timers(tx, &self.devices, active, now, effects)
    }
}

/// Deletes what the gateway no longer needs: stream events past their reach, snapshots and
/// press records past theirs. Alerts and their logs are kept.
fn housekeeping(tx: &crate::store::Batch<'_>, now: UnixMillis) -> Result<(), StoreError> {
    let cutoff = |keep: Duration| UnixMillis::new(now.get().saturating_sub(millis(keep)));
    let events = tx.prune_events(cutoff(KEEP_EVENTS_FOR), KEEP_EVENTS_AT_LEAST)?;
    let (snapshots, presses) = tx.prune_history(cutoff(KEEP_HISTORY_FOR))?;
    if events + snapshots + presses > 0 {
        tracing::info!(events, snapshots, presses, "pruned old records");
    }
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn profiles(store: &Store) -> Result<HashMap<DeviceId, Arc<DeviceProfile>>, StoreError> {
    Ok(store
        .device_profiles()?
        .into_iter()
        .map(|d| (d.id.clone(), Arc::new(d)))
        .collect())
}

/// What a committed batch must do, in order: frames to devices, events to streams, replies.
struct Effects {
    downlinks: Downlinks,
    events: broadcast::Sender<StoredEvent>,
    frames: Vec<(DeviceId, Downlink)>,
    stored: Vec<StoredEvent>,
    /// Integration messages: (subtopic under `hallwatch/`, JSON).
    announcements: Vec<(String, String)>,
    /// Whether `hallwatch/status` must be published again.
    status_changed: bool,
    replies: Vec<(usize, Result<AlertView, CommandError>)>,
}

/// The gateway's downlink sequence; the boot field of its frames is 0 (the gateway keeps no
/// boot counter: devices match acknowledgements by their own press's boot and seq).
static DOWNLINK_SEQ: AtomicU32 = AtomicU32::new(0);

impl Effects {
    fn new(downlinks: Downlinks, events: broadcast::Sender<StoredEvent>) -> Effects {
        Effects {
            downlinks,
            events,
            frames: Vec::new(),
            stored: Vec::new(),
            announcements: Vec::new(),
            status_changed: false,
            replies: Vec::new(),
        }
    }

    fn press_ack(&mut self, device: &DeviceId, ack: PressAck) {
        self.frame(device, Downlink::PressAck(ack));
    }

    fn frame(&mut self, device: &DeviceId, body: Downlink) {
        self.frames.push((device.clone(), body));
    }

    fn execute(self, inputs: Vec<Input>) {
        let mut buf = [0u8; MAX_FRAME_LEN];
        for (device, body) in self.frames {
            let seq = DOWNLINK_SEQ.fetch_add(1, Ordering::Relaxed);
            match encode_downlink(&Frame::new(0, seq, body), &mut buf) {
                Ok(bytes) => {
                    if let Err(e) = self.downlinks.send(device, Bytes::copy_from_slice(bytes)) {
                        tracing::warn!(error = %e, "downlink not sent");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode a downlink"),
            }
        }
        for (subtopic, json) in self.announcements {
            if let Err(e) = self.downlinks.announce(&subtopic, Bytes::from(json)) {
                tracing::warn!(error = %e, subtopic, "integration message not sent");
            }
        }
        for event in self.stored {
            // No subscriber is fine: the event is in the database for whoever connects.
            let _ = self.events.send(event);
        }
        let mut replies: HashMap<usize, _> = self.replies.into_iter().collect();
        for (index, input) in inputs.into_iter().enumerate() {
            match input {
                Input::Request(Request::Transition { reply, .. }) => {
                    let outcome = replies.remove(&index).unwrap_or_else(|| {
                        Err(CommandError::Internal("the engine did not answer".into()))
                    });
                    // The caller may have given up waiting; the change stands regardless.
                    let _ = reply.send(outcome);
                }
                Input::Sync(report) => report.done(),
                Input::Uplink(_) => {}
            }
        }
    }
}
