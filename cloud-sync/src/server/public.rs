//! The public listener's accept loop: plain HTTP/1.1 (TLS for browsers is terminated in front
//! of it), each connection on its own task with the peer's address in its requests
//! (login limits need it) and `TCP_NODELAY` (an event-stream frame must not wait for the
//! client's delayed acknowledgement of the previous one).
//!
//! It is hyper's own connection with one setting axum's own `serve` does not expose:
//! `half_close`. By default hyper keeps reading a connection whose response is still being
//! written, to notice a client that went away; for a live SSE stream that read grows the
//! connection's read buffer from 8 to 16 KiB, which measured 8 of the 21 KB of memory each
//! idle stream cost (`cargo xtask bench realtime`, BENCHMARKS.md). With it, a client that
//! leaves is noticed when the stream next writes (an event, or the heartbeat at most 15 s
//! later), which is when a stream's place under the per-person cap is freed anyway.

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection;
use crate::api::Routes;

/// Accepts connections until `cancel`, serving each on its own task; at `cancel` every
/// connection finishes its request in flight and closes (live streams end as the hub closes).
pub(super) async fn accept_loop(
    listener: TcpListener,
    routes: Routes,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    while let Some((tcp, peer)) = connection::accept(&listener, &cancel).await {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }
        let service = routes.for_peer(peer);
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let served = http1::Builder::new()
                .half_close(true)
                // With a timer, a request head must arrive within hyper's 30 s.
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(tcp), service);
            connection::serve(served, &cancel, peer).await;
        });
    }
}
