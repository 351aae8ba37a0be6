//! Processes and ports for tests and benchmarks that run real servers: a free loopback port,
//! waiting until something listens on it, and a child process killed when dropped.

use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

/// A port nothing listens on right now (the kernel's pick; free the moment this returns).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to 20 s until `addr` accepts TCP connections.
pub(crate) async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process that is killed (and reaped) when this is dropped, also on test failure.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
