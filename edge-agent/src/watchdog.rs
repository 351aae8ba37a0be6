//! What systemd's watchdog proves on the gateway: the alert engine — the one actor that
//! commits presses and acknowledges them — keeps turning. The watchdog itself (pinging every
//! quarter of `WatchdogSec`, withholding pings while the probe fails) is
//! `hallwatch_service::notify::Watchdog`, shared with the cloud.
//!
//! The engine renews its [`Heartbeat`] on every turn of its loop and turns at least every
//! [`TURN_AT_LEAST_EVERY`] when idle; it counts as alive while the heartbeat is younger than
//! half of `WatchdogSec`. An engine stuck inside one turn (a wedged disk, the database's write
//! lock held elsewhere for long, a bug that never returns) stops the pings, and systemd kills
//! and restarts the agent after `WatchdogSec`.

use std::sync::Arc;
use std::time::Duration;

use hallwatch_service::notify::{Probe, Watchdog};
use tokio_util::sync::CancellationToken;

use crate::engine::{Heartbeat, TURN_AT_LEAST_EVERY};

/// Starts the watchdog task if systemd asked for one; it stops with `stop`.
pub(crate) fn spawn(heartbeat: Arc<Heartbeat>, stop: CancellationToken) {
    let Some(watchdog) = Watchdog::from_env() else {
        return;
    };
    if watchdog.period() < 4 * TURN_AT_LEAST_EVERY {
        tracing::warn!(
            period = ?watchdog.period(),
            "WatchdogSec is shorter than 2 s: an idle engine may look hung"
        );
    }
    tokio::spawn(watchdog.run(EngineTurns(heartbeat), stop));
}

/// The engine's loop turned within half the watchdog's period.
struct EngineTurns(Arc<Heartbeat>);

impl Probe for EngineTurns {
    fn withheld(&self, why: &str, period: Duration) {
        tracing::error!(
            error = why,
            watchdog = ?period,
            "the alert engine has not turned for too long; withholding the watchdog ping \
             (systemd restarts the agent if it stays so)"
        );
    }

    fn resumed(&self) {
        tracing::warn!(age = ?self.0.age(), "the alert engine turns again; watchdog pings resume");
    }

    async fn check(&mut self, period: Duration) -> Result<(), String> {
        let age = self.0.age();
        if alive(age, period) {
            Ok(())
        } else {
            Err(format!("its loop has not turned for {age:?}"))
        }
    }
}

/// Whether an engine whose loop last turned `age` ago counts as alive under a watchdog of
/// `period`.
fn alive(age: Duration, period: Duration) -> bool {
    age < period / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_younger_than_half_the_period_is_alive() {
        let period = Duration::from_secs(30);
        assert!(alive(Duration::ZERO, period));
        assert!(alive(Duration::from_millis(14_999), period));
        assert!(!alive(Duration::from_secs(15), period));
    }
}
