//! `edge-agent simulate`: simulated buttons and cameras for demos, benchmarks and tests.
//!
//! It provisions (or reuses) `sim-btn-NNNN` and `sim-cam-NNNN` in rooms `SIM-NNN` with real
//! certificates from the gateway's CA (bundles under `DATA_DIR/sim/<id>/`), connects each over
//! MQTT with mutual TLS exactly as firmware would, and sends firmware-protocol frames.
//!
//! - here: the options and their validation, the run (start, press schedule, summary line
//!   every five seconds, stop);
//! - `provision`: registering new simulated devices, reusing registered ones;
//! - `device`: one device's connection (rumqttc event loop, TLS from its bundle);
//! - `firmware`: one device's behaviour (heartbeats, occupancy, presses and retransmission);
//! - `stats`, `rng`: the shared counters and a small random number generator.

mod device;
mod firmware;
mod provision;
mod rng;
mod stats;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use firmware_protocol::PressPattern;
use shared::ids::DeviceId;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigError};
use crate::install::InstallError;
use crate::store::DeviceKind;

use provision::{plan, provision};
use rng::Rng;
use stats::Stats;
pub use stats::Totals;

/// Most simulated devices of each kind.
pub const MAX_DEVICES_PER_KIND: u32 = 5_000;
/// Highest press rate, in presses per second over all buttons.
pub const MAX_PRESS_RATE: f64 = 1_000.0;
/// How often the summary line is printed.
const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// Devices handshaking at once; the gate allows 32 pending connections per source address.
const CONNECT_SLOTS: usize = 16;
/// How long devices get to disconnect cleanly at the end.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What `edge-agent simulate` was asked to do.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// The gateway's data directory (for its CA, its database and the bundles).
    pub data_dir: PathBuf,
    /// Simulated panic buttons.
    pub buttons: u32,
    /// Simulated cameras.
    pub cameras: u32,
    /// Presses per second over all buttons.
    pub press_rate: f64,
    /// Stop after this long (counted from when devices start connecting); `None`: until the
    /// shutdown future resolves.
    pub duration: Option<Duration>,
    /// Where to connect; default: the host and port devices are provisioned with.
    pub host: Option<String>,
    /// See `host`.
    pub port: Option<u16>,
    /// Time between a device's heartbeats.
    pub heartbeat_interval: Duration,
    /// Sends of one press before it is given up if no `PressAck` comes.
    pub press_retry_limit: u32,
}

impl SimulateOptions {
    /// Refuses options the simulator cannot honour, saying which and why.
    pub fn validate(&self) -> Result<(), SimulateError> {
        let invalid = |s: String| Err(SimulateError::Invalid(s));
        if self.buttons == 0 && self.cameras == 0 {
            return invalid("nothing to simulate: give --buttons or --cameras (at least 1)".into());
        }
        for (flag, n) in [("--buttons", self.buttons), ("--cameras", self.cameras)] {
            if n > MAX_DEVICES_PER_KIND {
                return invalid(format!(
                    "{flag} {n} is too many (at most {MAX_DEVICES_PER_KIND})"
                ));
            }
        }
        if !(0.0..=MAX_PRESS_RATE).contains(&self.press_rate) {
            return invalid(format!(
                "--press-rate {} is out of range (0 to {MAX_PRESS_RATE} presses per second)",
                self.press_rate
            ));
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return invalid("--duration must be at least 1 second".into());
        }
        if self.heartbeat_interval.is_zero() {
            return invalid("--heartbeat-interval must be at least 1 second".into());
        }
        if self.press_retry_limit == 0 {
            return invalid("--press-retry-limit must be at least 1".into());
        }
        Ok(())
    }
}

/// Why the simulator stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error("cannot simulate {id}: {reason}")]
    Device { id: DeviceId, reason: String },
    #[error("the bundle in {}: {reason}", dir.display())]
    Bundle { dir: PathBuf, reason: String },
    #[error("provisioning failed: {0}")]
    Provisioning(String),
}

impl SimulateError {
    /// 64 (EX_USAGE) for bad options or configuration, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            SimulateError::Invalid(_) | SimulateError::Config(_) => 64,
            SimulateError::Install(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// Provisions the devices, runs them until `options.duration` has passed or `shutdown`
/// resolves, printing a summary line every five seconds and a last one at the end.
pub async fn run(
    options: SimulateOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<Totals, SimulateError> {
    options.validate()?;
    let config = Config::load(&options.data_dir)?;
    let host = match options.host.clone() {
        Some(host) => host,
        None => config.device_host().ok_or(InstallError::NoDeviceHost)?,
    };
    let port = options.port.unwrap_or(config.mqtt_listen.port());
    let planned = plan(&options)?;
    let data_dir = options.data_dir.clone();
    let (planned, added) = tokio::task::spawn_blocking(move || provision(&data_dir, planned))
        .await
        .map_err(|e| SimulateError::Provisioning(e.to_string()))??;
    println!(
        "simulating {} buttons and {} cameras against {host}:{port} \
         ({added} provisioned now, {} reused; bundles in {})",
        options.buttons,
        options.cameras,
        planned.len() - added,
        options.data_dir.join("sim").display()
    );

    let stats = Arc::new(Stats::default());
    let shared = device::Shared {
        stats: Arc::clone(&stats),
        connect_slots: Arc::new(Semaphore::new(CONNECT_SLOTS)),
        cancel: CancellationToken::new(),
    };
    let tracker = TaskTracker::new();
    let mut buttons = Vec::new();
    for (n, device) in (0u64..).zip(planned) {
        let tls = device::bundle_tls(&device.bundle)?;
        let (presses, presses_rx) = mpsc::channel(16);
        if device.kind == DeviceKind::Button {
            buttons.push(presses);
        }
        let spec = device::Spec {
            id: device.id,
            kind: device.kind,
            room: device.room,
            host: host.clone(),
            port,
            heartbeat: options.heartbeat_interval,
            press_retry_limit: options.press_retry_limit,
        };
        device::spawn(
            spec,
            tls,
            &tracker,
            shared.clone(),
            presses_rx,
            Rng::seeded(n),
        );
    }
    if options.press_rate > 0.0 && !buttons.is_empty() {
        let rng = Rng::seeded(u64::MAX);
        tracker.spawn(press_buttons(
            buttons,
            options.press_rate,
            shared.cancel.clone(),
            rng,
        ));
    }
    tracker.close();

    let devices = usize::try_from(options.buttons + options.cameras).unwrap_or(usize::MAX);
    let started = Instant::now();
    let mut summary = tokio::time::interval_at(started + SUMMARY_EVERY, SUMMARY_EVERY);
    let deadline = options.duration.map(|d| started + d);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = sleep_until(deadline.unwrap_or(started)), if deadline.is_some() => break,
            _ = summary.tick() => {
                let secs = started.elapsed().as_secs_f64();
                println!("{secs:>6.1}s  {}", stats.totals(devices));
            }
        }
    }
    shared.cancel.cancel();
    if tokio::time::timeout(STOP_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some devices did not disconnect within {STOP_GRACE:?}");
    }
    let totals = stats.totals(devices);
    let secs = started.elapsed().as_secs_f64();
    println!("done after {secs:.1}s: {totals}");
    Ok(totals)
}

// === presses ===

/// Presses random buttons at `rate` presses per second: exponential gaps between presses, so
/// over all buttons the presses are a Poisson process.
async fn press_buttons(
    buttons: Vec<mpsc::Sender<PressPattern>>,
    rate: f64,
    cancel: CancellationToken,
    mut rng: Rng,
) {
    let count = u64::try_from(buttons.len()).unwrap_or(u64::MAX);
    let mut next = Instant::now();
    loop {
        // `unit()` is in [0, 1), so the logarithm's argument is in (0, 1].
        let gap = -(1.0 - rng.unit()).ln() / rate;
        next += Duration::from_secs_f64(gap.min(3_600.0));
        tokio::select! {
            () = cancel.cancelled() => return,
            () = sleep_until(next) => {}
        }
        let pattern = match rng.below(10) {
            0 => PressPattern::LongHold,
            1 | 2 => PressPattern::Double,
            _ => PressPattern::Single,
        };
        let pick = usize::try_from(rng.below(count)).unwrap_or(0);
        if let Some(button) = buttons.get(pick)
            && button.try_send(pattern).is_err()
        {
            tracing::debug!("a button is busy; press skipped");
        }
    }
}
