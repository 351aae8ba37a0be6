//! The service manager (systemd), over its notify protocol (the `sd-notify` crate): `READY=1`
//! once the service is up, `STOPPING=1` when it begins to stop, and `WATCHDOG=1` only while the
//! service's [`Probe`] says it is alive. The only module that speaks to the service manager.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd, or not as `Type=notify`) every message is
//! dropped, and without `WATCHDOG_USEC` (no `WatchdogSec=`) there is no watchdog task.
//!
//! The watchdog asks its probe every quarter of `WatchdogSec` and pings only when the probe
//! answered alive; a service whose probe fails for a whole `WatchdogSec` is killed and
//! restarted by systemd. The task runs on the service's runtime, so a stalled runtime stops the
//! pings too. What "alive" means is each service's own: the edge agent's alert engine turned
//! recently, the cloud's database pool answers.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// Tells the service manager that the service is up; `status` is shown by `systemctl status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells the service manager that the service is stopping (no more watchdog pings follow).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// What the watchdog proves before each ping. The service logs the watchdog's turns itself,
/// so its lines carry the service's own target (`RUST_LOG=edge_agent=debug` keeps them).
pub trait Probe: Send {
    /// The probe failed (`why`) and pings stop until it answers again; called once per
    /// failure, not on every withheld ping.
    fn withheld(&self, why: &str, period: Duration);

    /// The probe answers again after [`Probe::withheld`]; pings resume.
    fn resumed(&self);

    /// `Ok` if the service is alive, else why not. Asked every quarter of `period` (the
    /// watchdog's `WatchdogSec`); an answer should come within that quarter.
    fn check(&mut self, period: Duration) -> impl Future<Output = Result<(), String>> + Send;
}

/// The watchdog systemd asked for (`WatchdogSec=`, passed as `WATCHDOG_USEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchdog {
    period: Duration,
}

impl Watchdog {
    /// The watchdog of this process, if systemd enabled one.
    pub fn from_env() -> Option<Watchdog> {
        sd_notify::watchdog_enabled().map(|period| Watchdog { period })
    }

    /// A watchdog of `period` (`WatchdogSec`), for tests and for callers that read it
    /// elsewhere.
    pub fn with_period(period: Duration) -> Watchdog {
        Watchdog { period }
    }

    /// `WatchdogSec`: systemd restarts the service when no ping came for this long.
    pub fn period(self) -> Duration {
        self.period
    }

    /// Pings systemd every quarter period while `probe` answers alive, until `stop`.
    pub async fn run(self, probe: impl Probe, stop: CancellationToken) {
        self.run_with(probe, stop, || send(&[NotifyState::Watchdog]))
            .await;
    }

    /// [`Watchdog::run`] with the ping given, so tests can count them.
    async fn run_with(
        self,
        mut probe: impl Probe,
        stop: CancellationToken,
        mut ping: impl FnMut(),
    ) {
        let mut every = tokio::time::interval(self.period / 4);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut withheld = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            match probe.check(self.period).await {
                Ok(()) => {
                    if withheld {
                        probe.resumed();
                        withheld = false;
                    }
                    ping();
                }
                Err(why) if !withheld => {
                    probe.withheld(&why, self.period);
                    withheld = true;
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Answers from a script, one per check; alive once the script is used up.
    struct Scripted(Arc<Mutex<Vec<bool>>>, Arc<Mutex<Vec<&'static str>>>);

    impl Probe for Scripted {
        fn withheld(&self, _why: &str, _period: Duration) {
            self.1.lock().unwrap().push("withheld");
        }

        fn resumed(&self) {
            self.1.lock().unwrap().push("resumed");
        }

        async fn check(&mut self, _period: Duration) -> Result<(), String> {
            let mut script = self.0.lock().unwrap();
            match script.first().copied() {
                Some(alive) => {
                    script.remove(0);
                    if alive {
                        Ok(())
                    } else {
                        Err("scripted".into())
                    }
                }
                None => Ok(()),
            }
        }
    }

    // Time is paused: the interval's ticks come as fast as the test advances the clock.
    #[tokio::test(start_paused = true)]
    async fn pings_every_quarter_period_only_while_the_probe_answers_alive() {
        let watchdog = Watchdog::with_period(Duration::from_secs(4));
        let script = Arc::new(Mutex::new(vec![true, false, false, true]));
        let said = Arc::new(Mutex::new(Vec::new()));
        let pings = Arc::new(Mutex::new(0_u32));
        let stop = CancellationToken::new();
        let task = {
            let pings = Arc::clone(&pings);
            let probe = Scripted(Arc::clone(&script), Arc::clone(&said));
            tokio::spawn(watchdog.run_with(probe, stop.clone(), move || {
                *pings.lock().unwrap() += 1;
            }))
        };
        // The first tick is immediate, then one a second: at 0.5 s one check ran, at 3.5 s four.
        let seen_at = |secs: f64| async move {
            tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_secs_f64(secs))
                .await;
        };
        seen_at(0.5).await;
        assert_eq!(*pings.lock().unwrap(), 1);
        seen_at(2.0).await;
        assert_eq!(
            *pings.lock().unwrap(),
            1,
            "two failed checks withheld two pings"
        );
        seen_at(1.0).await;
        assert_eq!(
            *pings.lock().unwrap(),
            2,
            "pings resume when the probe answers"
        );
        assert!(script.lock().unwrap().is_empty());
        assert_eq!(*said.lock().unwrap(), ["withheld", "resumed"], "once each");
        stop.cancel();
        task.await.unwrap();
    }
}
