//! The signals that stop a service: SIGTERM (what systemd sends) and SIGINT (Ctrl-C).

/// Resolves on SIGTERM (what systemd sends to stop a service) or Ctrl-C. The handlers are
/// installed when this is called, not when the future is first polled: called before the
/// listeners are bound, a SIGTERM that comes as soon as they accept stops the service
/// cleanly instead of killing it (the signal's default action). Needs the runtime entered.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (terminate, interrupt) => {
                tracing::warn!(
                    sigterm = ?terminate.err(),
                    sigint = ?interrupt.err(),
                    "cannot watch SIGTERM or SIGINT; stopping on Ctrl-C only"
                );
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        tracing::info!("shutdown requested");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // The handlers are installed by the call, so a signal raised before the first poll is not
    // lost (and does not kill the test process, as SIGTERM's default action would).
    #[tokio::test]
    async fn a_sigterm_raised_before_the_first_poll_resolves_it() {
        let stop = shutdown_signal();
        let raised = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(raised.success());
        tokio::time::timeout(Duration::from_secs(10), stop)
            .await
            .expect("the shutdown future resolves on SIGTERM");
    }
}
