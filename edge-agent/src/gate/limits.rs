//! Connection limits: how many connections the gate holds, how many may still be handshaking
//! (in total and per source address), and how long each stage may take. Everything over a
//! limit is closed at once, so no client can make the gate hold unbounded sockets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use crate::config::GateLimits;

/// A rate limiter on publishes (governor's, which waits asynchronously for capacity).
pub(super) type UplinkRate = governor::DefaultDirectRateLimiter;

/// A limiter allowing `per_s` publishes a second, in bursts of at most a tenth of a second's
/// worth: a burst must fit in the broker's uplink log (see `BrokerSettings::uplink_log_bytes`).
pub(super) fn uplink_rate(per_s: u32) -> UplinkRate {
    let rate = NonZeroU32::new(per_s).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_s / 10).unwrap_or(NonZeroU32::MIN);
    governor::RateLimiter::direct(governor::Quota::per_second(rate).allow_burst(burst))
}

/// Counts connections against the limits.
#[derive(Debug)]
pub(super) struct Admission {
    limits: GateLimits,
    /// Shared by every connection.
    pub(super) total_uplinks: UplinkRate,
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
            total_uplinks: uplink_rate(limits.total_uplinks_per_s),
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
