//! Connection limits: how many connections the gate holds, how many may still be handshaking
//! (in total and per source address), and how long each stage may take. Everything over a
//! limit is closed at once, so no client can make the gate hold unbounded sockets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The gate's limits; `agent.toml`'s `[gate]` section sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateLimits {
    /// Most connections at once, authenticated or not.
    pub max_connections: usize,
    /// Most connections still in the TLS handshake or before their MQTT CONNECT.
    pub max_pending: usize,
    /// Most such pending connections from one source address.
    pub max_pending_per_ip: usize,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed between the handshake and the MQTT CONNECT.
    pub connect_timeout: Duration,
    /// Largest MQTT packet a device may send, in bytes (the "remaining length").
    pub max_packet_bytes: usize,
}

impl Default for GateLimits {
    fn default() -> Self {
        GateLimits {
            max_connections: 4000,
            max_pending: 512,
            max_pending_per_ip: 32,
            handshake_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            max_packet_bytes: 1024,
        }
    }
}

/// Counts connections against the limits.
#[derive(Debug)]
pub(super) struct Admission {
    limits: GateLimits,
    connections: Arc<Semaphore>,
    pending: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Held while a connection is pending; dropping it frees the slot.
#[derive(Debug)]
pub(super) struct Pending {
    admission: Arc<Admission>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    pub(super) fn new(limits: GateLimits) -> Admission {
        Admission {
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            pending: Arc::new(Semaphore::new(limits.max_pending)),
            per_ip: Mutex::new(HashMap::new()),
            limits,
        }
    }

    pub(super) fn limits(&self) -> &GateLimits {
        &self.limits
    }

    /// A connection slot and a pending slot for a new connection from `ip`, or `None` when any
    /// limit is reached.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<(OwnedSemaphorePermit, Pending)> {
        let connection = Arc::clone(&self.connections).try_acquire_owned().ok()?;
        let pending = Arc::clone(&self.pending).try_acquire_owned().ok()?;
        let mut per_ip = self.lock();
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.limits.max_pending_per_ip {
            return None;
        }
        *count += 1;
        drop(per_ip);
        Some((
            connection,
            Pending {
                admission: Arc::clone(self),
                ip,
                _permit: pending,
            },
        ))
    }

    /// Connections held right now.
    pub(super) fn connections(&self) -> usize {
        self.limits.max_connections - self.connections.available_permits()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_ip.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut per_ip = self.admission.lock();
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}
