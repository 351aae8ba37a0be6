//! The gateway's device side: broker and gate up, uplinks flowing out, downlinks flowing in,
//! and an orderly stop. [`crate::Agent`] puts the engine behind it; tests and benchmarks of the
//! gate alone drive devices against a bare [`Gateway`].

use std::net::SocketAddr;
use std::path::Path;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{self, BrokerSettings, Downlinks, Uplink};
use crate::config::Config;
use crate::gate::{Gate, GateHandle, TlsFiles};

/// A started gateway. Dropping it without [`stop`](Gateway::stop) leaves its tasks running
/// until the runtime ends.
#[derive(Debug)]
pub struct Gateway {
    /// Where devices connect (the bound address, useful when configured with port 0).
    pub mqtt_addr: SocketAddr,
    /// Counters of the device gate.
    pub gate: GateHandle,
    /// Frames to devices.
    pub downlinks: Downlinks,
    /// Frames from devices, in arrival order. Whoever runs the gateway must consume them.
    pub uplinks: mpsc::Receiver<Uplink>,
    broker_failed: oneshot::Receiver<String>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Gateway {
    /// Starts the embedded broker and the device gate for the gateway in `data_dir`.
    pub async fn start(config: &Config, data_dir: &Path) -> anyhow::Result<Gateway> {
        raise_open_file_limit();
        let broker = broker::start(&BrokerSettings {
            max_packet_bytes: config.gate.max_packet_bytes,
            ..BrokerSettings::default()
        })
        .await?;
        let gate = Gate::bind(
            config.mqtt_listen,
            config.school_id.clone(),
            TlsFiles::in_data_dir(data_dir),
            config.gate.clone(),
            broker.gate,
        )
        .await?;
        let mqtt_addr = gate.local_addr()?;
        let handle = gate.handle();
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(gate.run(shutdown.clone()));
        tracing::info!(%mqtt_addr, school = %config.school_id, "device gate listening");
        Ok(Gateway {
            mqtt_addr,
            gate: handle,
            downlinks: broker.downlinks,
            uplinks: broker.uplinks,
            broker_failed: broker.failed,
            shutdown,
            tasks,
        })
    }

    /// Resolves if the broker fails: rumqttd has no shutdown, so this is fatal for the agent.
    pub async fn failed(&mut self) -> String {
        (&mut self.broker_failed)
            .await
            .unwrap_or_else(|_| "the broker stopped".into())
    }

    /// Closes the device listener and every connection, and waits for them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Each device holds a descriptor (its TLS socket); the default soft limit of 1024 would cap a
/// gateway below the gate's default `max_connections` (4,000).
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
}
