//! The whole agent: the gateway's device side ([`Gateway`]: gate and broker), the engine that
//! owns the state, and the local API. [`run`] is what `edge-agent run` calls; [`Agent::start`]
//! is the same without the waiting, for tests and benchmarks.
//!
//! Shutdown runs in a fixed order: stop intake (the dashboard's listener and streams, the
//! device listener and connections), then the sync loop (it reports to the engine), then let
//! the engine commit what it has taken in and stop, then close the database (the engine owns
//! the only writing connection).
//!
//! Under systemd, [`run`] sends `READY=1` once [`Agent::start`] has returned (the listeners are
//! bound and served, the engine runs), pings the watchdog while the engine's loop turns, and
//! sends `STOPPING=1` before the stop begins (see `watchdog` and `hallwatch_service::notify`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use hallwatch_service::notify;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::engine::{Engine, EngineHandle};
use crate::gateway::Gateway;
use crate::install::ensure_operator_token;
use crate::metrics::Metrics;
use crate::store::{DB_FILE, Store};
use crate::sync::SyncLoop;

/// A started agent.
#[derive(Debug)]
pub struct Agent {
    /// Where devices connect.
    pub mqtt_addr: SocketAddr,
    /// Where the dashboard and local API listen.
    pub http_addr: SocketAddr,
    /// The engine, for in-process callers (tests).
    pub engine: EngineHandle,
    gateway: Gateway,
    engine_thread: Engine,
    sync: SyncLoop,
    api_task: tokio::task::JoinHandle<std::io::Result<()>>,
    api_shutdown: CancellationToken,
    engine_shutdown: CancellationToken,
}

impl Agent {
    /// Opens the database, starts the engine, the device side and the local API, on the
    /// system clock.
    pub async fn start(config: &Config, data_dir: &Path) -> anyhow::Result<Agent> {
        Agent::start_with_clock(config, data_dir, SystemClock::shared()).await
    }

    /// [`Agent::start`] on `clock`.
    pub async fn start_with_clock(
        config: &Config,
        data_dir: &Path,
        clock: SharedClock,
    ) -> anyhow::Result<Agent> {
        let token = ensure_operator_token(data_dir)?;
        let db_path = data_dir.join(DB_FILE);
        let store = Store::open(&db_path)?;
        let listener = api::bind(config.http_listen)
            .await
            .with_context(|| format!("cannot listen on {} (http.listen)", config.http_listen))?;
        let http_addr = listener.local_addr()?;
        let mut gateway = Gateway::start(config, data_dir).await?;
        retain_open_alerts(&store, &gateway);
        // The engine consumes the uplinks; the gateway keeps a closed receiver in their place.
        let uplinks = std::mem::replace(&mut gateway.uplinks, mpsc::channel(1).1);
        let engine_shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let engine = Engine::start(
            store,
            config,
            uplinks,
            Arc::new(gateway.downlinks.clone()),
            Arc::clone(&metrics),
            clock,
            engine_shutdown.clone(),
        )?;
        let sync = SyncLoop::start(config, data_dir, &engine.handle, &metrics);
        let api_shutdown = CancellationToken::new();
        let state = ApiState::new(
            engine.handle.clone(),
            config.school_id.clone(),
            db_path,
            token,
            sync.status(),
            api_shutdown.clone(),
            metrics,
            gateway.gate.clone(),
        );
        let api_task = tokio::spawn(api::serve(listener, state));
        tracing::info!(%http_addr, "local dashboard listening");
        Ok(Agent {
            mqtt_addr: gateway.mqtt_addr,
            http_addr,
            engine: engine.handle.clone(),
            gateway,
            engine_thread: engine,
            sync,
            api_task,
            api_shutdown,
            engine_shutdown,
        })
    }

    /// Stops in order: intake, then the sync loop, then the engine, then the database.
    pub async fn stop(self) {
        self.api_shutdown.cancel();
        self.gateway.stop().await;
        match self.api_task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the local API stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "the local API task failed"),
        }
        self.sync.stop().await;
        self.engine_shutdown.cancel();
        self.engine_thread.join().await;
    }

    /// Resolves if the broker fails (fatal for the agent).
    pub async fn failed(&mut self) -> String {
        self.gateway.failed().await
    }
}

/// Publishes every open alert on `hallwatch/alerts/{id}` once at start, so that the gate
/// retains them again after a restart (its retained store is in memory). Queued ahead of
/// anything the engine publishes, so a later change always arrives after it.
fn retain_open_alerts(store: &Store, gateway: &Gateway) {
    let open = match store.open_alerts() {
        Ok(open) => open,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the open alerts to retain them");
            return;
        }
    };
    for alert in &open {
        let json = crate::view::to_json(&crate::view::AlertView::from(alert));
        let subtopic = format!("alerts/{}", alert.id);
        if let Err(e) = gateway.downlinks.announce(&subtopic, json.into()) {
            tracing::warn!(error = %e, "cannot retain an open alert");
        }
    }
}

/// Runs the agent in `data_dir` until `shutdown` resolves (or the broker fails).
pub async fn run(data_dir: &Path, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = Config::load(data_dir)?;
    let mut agent = Agent::start(&config, data_dir)
        .await
        .with_context(|| format!("cannot start the agent in {}", data_dir.display()))?;
    notify::ready(&format!(
        "devices on {}, dashboard on {}",
        agent.mqtt_addr, agent.http_addr
    ));
    let watchdog_stop = CancellationToken::new();
    crate::watchdog::spawn(agent.engine.heartbeat(), watchdog_stop.clone());
    tokio::pin!(shutdown);
    let failed = tokio::select! {
        () = &mut shutdown => None,
        why = agent.failed() => Some(why),
    };
    notify::stopping();
    watchdog_stop.cancel();
    tracing::info!("stopping: closing the dashboard and device connections");
    agent.stop().await;
    match failed {
        Some(why) => anyhow::bail!("{why}"),
        None => Ok(()),
    }
}
