//! The service manager (systemd), over its notify protocol (the `sd-notify` crate): `READY=1`
//! once both listeners are served, `STOPPING=1` when shutdown begins, and `WATCHDOG=1` only
//! while the database pool answers. The only module that speaks to the service manager.
//!
//! Without `NOTIFY_SOCKET` every message is dropped; without `WATCHDOG_USEC` (no
//! `WatchdogSec=`) there is no watchdog task.
//!
//! What the watchdog proves: every quarter of `WatchdogSec` the task takes a connection from
//! the service's own pool and runs `SELECT 1`, bounded by that quarter; it pings only when the
//! answer came. Every request the service serves needs the pool, so a pool that hands out no
//! connection (Postgres gone, connections wedged) for a whole `WatchdogSec` means a service
//! that serves nothing, and systemd restarts it; a restart that cannot connect exits, and
//! `Restart=` keeps trying. The task runs on the service's runtime, so a stalled runtime stops
//! the pings too.

use std::time::Duration;

use sd_notify::NotifyState;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db;

/// Tells the service manager that the service is up; `status` is shown by `systemctl status`.
pub(super) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells the service manager that the service is stopping (no more watchdog pings follow).
pub(super) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// The watchdog systemd asked for (`WatchdogSec=`, passed as `WATCHDOG_USEC`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Watchdog {
    period: Duration,
}

impl Watchdog {
    /// The watchdog of this process, if systemd enabled one.
    pub(super) fn from_env() -> Option<Watchdog> {
        sd_notify::watchdog_enabled().map(|period| Watchdog { period })
    }

    /// Pings systemd every quarter period while the pool answers, until `stop`.
    pub(super) async fn run(self, pool: PgPool, stop: CancellationToken) {
        let quarter = self.period / 4;
        let mut every = tokio::time::interval(quarter);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut withheld = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            let failure = match tokio::time::timeout(quarter, db::ping(&pool)).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {quarter:?}")),
            };
            match failure {
                None => {
                    if withheld {
                        tracing::warn!("the database answers again; watchdog pings resume");
                        withheld = false;
                    }
                    send(&[NotifyState::Watchdog]);
                }
                Some(why) if !withheld => {
                    tracing::error!(
                        error = %why,
                        watchdog = ?self.period,
                        "the database pool does not answer; withholding the watchdog ping \
                         (systemd restarts the service if it stays so)"
                    );
                    withheld = true;
                }
                Some(_) => {}
            }
        }
    }
}
