//! The sync loop: uploads the outbox to the cloud, one task per lane.
//!
//! The outbox is the queue: the engine appends records in the transaction of the change they
//! describe and deletes them when the cloud acknowledges them, so nothing here is held only in
//! memory and a crash or a stop loses nothing (a batch in flight is sent again; the cloud
//! merges each record once). The loop never writes the database itself: acknowledgements,
//! the cloud's commands and dead letters go to the engine ([`EngineHandle::acked`],
//! [`EngineHandle::dead_letter`]), the one writer, which applies them in its transaction.
//!
//! The gateway's local operation never waits on this: the engine only signals a lane after a
//! commit, and a lane that is failing, backing off or stuck in a request holds up nothing but
//! itself.
//!
//! - `client`: the mTLS request and the sorting of its answer.
//! - `lane`: one lane's loop (batching, heartbeat, backoff, dead letters).
//! - `status`: the link as last experienced, for the API and `edge-agent status`.

mod client;
mod lane;
mod status;

use std::path::Path;
use std::sync::Arc;

use shared::sync::Lane;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::engine::EngineHandle;
use crate::metrics::Metrics;
use crate::store::DB_FILE;

pub use client::{ClientError, Outcome, Probe, SYNC_PATH, SyncClient};
pub use status::{LinkReport, LinkState, SyncStatus};

/// The running sync loop (or the reason there is none), and its status.
#[derive(Debug)]
pub struct SyncLoop {
    status: Arc<SyncStatus>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: CancellationToken,
}

impl SyncLoop {
    /// Starts one task per lane if the gateway is enrolled and its enrollment files are
    /// usable. Otherwise nothing runs and the status says why: the gateway works on without
    /// the cloud either way.
    pub fn start(
        config: &Config,
        data_dir: &Path,
        engine: &EngineHandle,
        metrics: &Arc<Metrics>,
    ) -> SyncLoop {
        let epoch = engine.epoch();
        let clock = engine.clock();
        let idle = |state, reason| SyncLoop {
            status: Arc::new(SyncStatus::fixed(state, Some(epoch), reason, clock.now())),
            tasks: Vec::new(),
            shutdown: CancellationToken::new(),
        };
        let Some(cloud) = &config.cloud else {
            tracing::info!("not enrolled with a cloud: records stay in the outbox");
            return idle(LinkState::NotEnrolled, None);
        };
        let client =
            match SyncClient::new(data_dir, &cloud.sync_url, &cloud.gateway_id, &config.sync) {
                Ok(client) => client.with_metrics(Arc::clone(metrics)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot sync with the cloud");
                    return idle(LinkState::Misconfigured, Some(e.to_string()));
                }
            };
        let status = Arc::new(SyncStatus::new(LinkState::Connecting, Some(epoch)));
        let shutdown = CancellationToken::new();
        let db_path = Arc::new(data_dir.join(DB_FILE));
        let recovered = Arc::new(tokio::sync::Notify::new());
        let tasks = Lane::ALL
            .iter()
            .map(|&lane| {
                let lane_loop = lane::LaneLoop {
                    lane,
                    client: client.clone(),
                    engine: engine.clone(),
                    signals: engine.outbox_signals(),
                    db_path: Arc::clone(&db_path),
                    school_id: config.school_id.clone(),
                    gateway_id: cloud.gateway_id.clone(),
                    epoch,
                    settings: config.sync,
                    status: Arc::clone(&status),
                    recovered: Arc::clone(&recovered),
                    shutdown: shutdown.clone(),
                    clock: Arc::clone(&clock),
                };
                tokio::spawn(lane_loop.run())
            })
            .collect();
        tracing::info!(sync_url = %cloud.sync_url.as_str(), gateway = %cloud.gateway_id, %epoch, "syncing with the cloud");
        SyncLoop {
            status,
            tasks,
            shutdown,
        }
    }

    /// The link as last experienced.
    pub fn status(&self) -> Arc<SyncStatus> {
        Arc::clone(&self.status)
    }

    /// Stops the lanes (a request in flight is abandoned and sent again at the next start).
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a sync lane failed");
            }
        }
    }
}
