//! The devices connected through the gate right now, so that a newer connection of the same
//! device replaces the older one, a revoked device is cut off while connected, and a downlink
//! finds its device's connection.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use shared::ids::DeviceId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::tls::RevokedSerials;

/// Downlinks waiting for one device's connection. Downlinks are QoS 0 and rare (acks and
/// commands); past this many the device is not keeping up and further frames are dropped.
const DOWNLINK_QUEUE: usize = 8;

#[derive(Debug, Default)]
pub(super) struct Registry {
    sessions: Mutex<HashMap<DeviceId, Entry>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    serial: Vec<u8>,
    end: CancellationToken,
    downlinks: mpsc::Sender<Bytes>,
}

/// Removes its session from the registry when the session ends.
#[derive(Debug)]
pub(super) struct Registration<'a> {
    registry: &'a Registry,
    device: DeviceId,
    id: u64,
    /// Cancelled when the session must end: replaced, revoked.
    pub(super) end: CancellationToken,
}

impl Registry {
    /// Records a new session for `device`, ending any older one (the device reconnected; its
    /// old TCP connection is dead or about to be). Downlinks to the device arrive on the
    /// returned receiver.
    pub(super) fn register(
        &self,
        device: &DeviceId,
        serial: Vec<u8>,
    ) -> (Registration<'_>, mpsc::Receiver<Bytes>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let end = CancellationToken::new();
        let (downlinks, receiver) = mpsc::channel(DOWNLINK_QUEUE);
        let entry = Entry {
            id,
            serial,
            end: end.clone(),
            downlinks,
        };
        if let Some(old) = self.lock().insert(device.clone(), entry) {
            tracing::info!(device = %device, "device reconnected; closing its older connection");
            old.end.cancel();
        }
        let registration = Registration {
            registry: self,
            device: device.clone(),
            id,
            end,
        };
        (registration, receiver)
    }

    /// Gives `frame` to `device`'s connection without waiting; drops it when the device is not
    /// connected or its queue is full (QoS 0: the agent's protocol retransmits what matters).
    /// Called on the broker's downlink thread, so it must never block.
    pub(super) fn deliver(&self, device: &DeviceId, frame: Bytes) {
        let queued = match self.lock().get(device) {
            Some(entry) => entry.downlinks.try_send(frame).is_ok(),
            None => false,
        };
        if !queued {
            tracing::debug!(%device, "downlink dropped: device not connected or not keeping up");
        }
    }

    /// Ends every session whose certificate is revoked; returns how many.
    pub(super) fn end_revoked(&self, revoked: &RevokedSerials) -> usize {
        let mut ended = 0;
        for (device, entry) in self.lock().iter() {
            if revoked.contains(&entry.serial) {
                tracing::warn!(device = %device, "certificate revoked; disconnecting");
                entry.end.cancel();
                ended += 1;
            }
        }
        ended
    }

    /// How many devices are connected.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The devices connected now.
    pub(super) fn ids(&self) -> Vec<DeviceId> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Entry>> {
        // Entries are inserted and removed whole; a poisoned map is still consistent.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut sessions = self.registry.lock();
        // Only remove our own entry: a newer session of the same device may have replaced it.
        if sessions.get(&self.device).is_some_and(|e| e.id == self.id) {
            sessions.remove(&self.device);
        }
    }
}
