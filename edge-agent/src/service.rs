//! The service manager (systemd), over its notify protocol (the `sd-notify` crate): `READY=1`
//! once the agent is up, `STOPPING=1` when it begins to stop, and `WATCHDOG=1` only while the
//! alert engine's loop keeps turning. The only module that speaks to the service manager.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd, or not as `Type=notify`) every message is
//! dropped, and without `WATCHDOG_USEC` (no `WatchdogSec=`) there is no watchdog task.
//!
//! What the watchdog proves: the engine — the one actor that commits presses and acknowledges
//! them — renews its [`Heartbeat`] on every turn of its loop and turns at least every
//! [`TURN_AT_LEAST_EVERY`] when idle. The watchdog task pings every quarter of `WatchdogSec`
//! while the heartbeat is younger than half of it. An engine stuck inside one turn (a wedged
//! disk, the database's write lock held elsewhere for long, a bug that never returns) stops
//! the pings, and systemd kills and restarts the agent after `WatchdogSec`. The task runs on
//! the main runtime, so it also stops when the agent's runtime itself stalls.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::engine::{Heartbeat, TURN_AT_LEAST_EVERY};

/// Tells the service manager that the agent is up; `status` is shown by `systemctl status`.
pub(crate) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells the service manager that the agent is stopping (no more watchdog pings follow).
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// The watchdog systemd asked for (`WatchdogSec=`, passed as `WATCHDOG_USEC`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watchdog {
    period: Duration,
}

impl Watchdog {
    /// The watchdog of this process, if systemd enabled one.
    pub(crate) fn from_env() -> Option<Watchdog> {
        let period = sd_notify::watchdog_enabled()?;
        if period < 4 * TURN_AT_LEAST_EVERY {
            tracing::warn!(
                ?period,
                "WatchdogSec is shorter than 2 s: an idle engine may look hung"
            );
        }
        Some(Watchdog { period })
    }

    /// Pings systemd every quarter period while `heartbeat` is fresh, until `stop`.
    pub(crate) async fn run(self, heartbeat: Arc<Heartbeat>, stop: CancellationToken) {
        let mut every = tokio::time::interval(self.period / 4);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut withheld = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            let age = heartbeat.age();
            if self.alive(age) {
                if withheld {
                    tracing::warn!(?age, "the alert engine turns again; watchdog pings resume");
                    withheld = false;
                }
                send(&[NotifyState::Watchdog]);
            } else if !withheld {
                tracing::error!(
                    ?age,
                    watchdog = ?self.period,
                    "the alert engine has not turned for too long; withholding the watchdog \
                     ping (systemd restarts the agent if it stays so)"
                );
                withheld = true;
            }
        }
    }

    /// Whether an engine whose loop last turned `age` ago counts as alive.
    fn alive(self, age: Duration) -> bool {
        age < self.period / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_younger_than_half_the_period_is_alive() {
        let watchdog = Watchdog {
            period: Duration::from_secs(30),
        };
        assert!(watchdog.alive(Duration::ZERO));
        assert!(watchdog.alive(Duration::from_millis(14_999)));
        assert!(!watchdog.alive(Duration::from_secs(15)));
    }
}
