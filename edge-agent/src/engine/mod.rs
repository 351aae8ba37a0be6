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
//! Time comes from the [`SharedClock`] the engine is started with: every stamp it writes and
//! every rule it applies (escalation, the cancel window, device liveness, the snapshot
//! schedule) reads that clock, so tests drive the rules with a manual one and no sleeps.
//!
//! # Layout
//!
//! - `worker`: the loop on the engine's thread (channels, timers, the drain at shutdown) and
//!   the batch: one transaction for the inputs taken, then the effects;
//! - `state`: the cached state and the dispatch of each input to the part it concerns;
//! - `effects`: what a committed batch does: frames to devices, integration messages, stream
//!   events, replies;
//! - `alerts`: presses, cancels, staff transitions and escalation, via `shared::alert::step`;
//! - `telemetry`: device health, room counts and school snapshots;
//! - `cloud`: what the sync loop reports: acknowledgements (the outbox shrinks), commands from
//!   the cloud (carried out once, through the same paths as the dashboard's), dead letters;
//! - `heartbeat`: the loop's proof of life, renewed on every turn (at least every
//!   [`TURN_AT_LEAST_EVERY`]), which the service watchdog reads.

mod alerts;
mod cloud;
mod effects;
mod heartbeat;
mod state;
mod telemetry;
#[cfg(test)]
mod tests;
mod worker;

use std::sync::Arc;

use shared::alert::Actor;
use shared::ids::AlertId;
use shared::sync::Lane;
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::bus::{SharedOutbound, Uplink};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, StoredEvent};
use crate::view::AlertView;

pub use alerts::{CommandError, StaffVerb};
pub use cloud::SyncInput;
pub use heartbeat::{Heartbeat, TURN_AT_LEAST_EVERY};
use worker::{Core, Worker};

/// Most inputs applied in one transaction.
pub const MAX_BATCH: usize = 1_024;
/// Requests from the API waiting for the engine before callers are told it is busy.
const REQUEST_BUFFER: usize = 256;
/// Reports from the sync loop waiting for the engine (one per lane is the most in flight).
const SYNC_BUFFER: usize = 8;
/// Events buffered for slow stream subscribers before they must catch up from the database.
const EVENT_BUFFER: usize = 4_096;

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
    clock: SharedClock,
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

    /// The clock the engine runs on, for whoever stamps what it reports.
    pub fn clock(&self) -> SharedClock {
        Arc::clone(&self.clock)
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
        store: Store,
        config: &Config,
        uplinks: mpsc::Receiver<Uplink>,
        outbound: SharedOutbound,
        metrics: Arc<Metrics>,
        clock: SharedClock,
        shutdown: CancellationToken,
    ) -> Result<Engine, EngineError> {
        let (requests_tx, requests) = mpsc::channel(REQUEST_BUFFER);
        let (sync_tx, sync) = mpsc::channel(SYNC_BUFFER);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let outbox = Arc::new(OutboxSignals::default());
        let heartbeat = Arc::new(Heartbeat::new(Arc::clone(&clock)));
        let (core, epoch) = Core::start(
            store,
            config,
            outbound,
            events.clone(),
            outbox.clone(),
            metrics,
            Arc::clone(&clock),
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
                    core,
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
                clock,
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
