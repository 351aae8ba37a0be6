//! Which devices are registered, as far as the gate must know: a certificate the gateway CA
//! signed is not enough to connect, its device id must also be registered (and not revoked) in
//! the gateway's database. Such a certificate can exist without a registration, e.g. after the
//! database was restored from a backup older than the CA.
//!
//! The registered ids are cached. A device not in the cache makes the gate read them all again
//! (`edge-agent device add` registers devices while the agent runs, and the new device must get
//! in at once); connections that miss at the same time share one read. Only a device the cache
//! does not know costs a read, so the devices that connect every day never wait for the
//! database. A device revoked since is still in the cache, but its certificate is on the CRL.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use shared::ids::DeviceId;
use tokio::sync::Mutex;

use crate::store::{DeviceState, Reader, StoreError};

/// The registered devices, read from the database at `db`.
#[derive(Debug)]
pub(super) struct Roster {
    db: PathBuf,
    active: RwLock<HashSet<DeviceId>>,
    /// Held while the database is read, so that concurrent misses share one read.
    reading: Mutex<()>,
    /// How many reads have started.
    reads: AtomicU64,
}

impl Roster {
    /// A roster that reads `db` when it is first asked.
    pub(super) fn new(db: PathBuf) -> Roster {
        Roster {
            db,
            active: RwLock::new(HashSet::new()),
            reading: Mutex::new(()),
            reads: AtomicU64::new(0),
        }
    }

    /// Whether `device` is registered and active, reading the database if the cache does not
    /// say so.
    pub(super) async fn is_registered(&self, device: &DeviceId) -> Result<bool, StoreError> {
        if self.cached(device) {
            return Ok(true);
        }
        let before = self.reads.load(Ordering::Acquire);
        let _reading = self.reading.lock().await;
        // A read that started after this miss has finished (reads hold the lock): it saw
        // everything registered before this connection, so it answers for it too.
        if self.reads.load(Ordering::Acquire) == before {
            self.reads.fetch_add(1, Ordering::AcqRel);
            let db = self.db.clone();
            let active = tokio::task::spawn_blocking(move || read_active(&db))
                .await
                .unwrap_or_else(|panicked| std::panic::resume_unwind(panicked.into_panic()))?;
            *self.active.write().unwrap_or_else(|p| p.into_inner()) = active;
        }
        Ok(self.cached(device))
    }

    fn cached(&self, device: &DeviceId) -> bool {
        // The set is replaced whole, so a poisoned lock still holds a consistent one.
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(device)
    }
}

/// The ids of the active devices in the database.
fn read_active(db: &std::path::Path) -> Result<HashSet<DeviceId>, StoreError> {
    let devices = Reader::open(db)?.devices()?;
    Ok(devices
        .into_iter()
        .filter(|d| d.state == DeviceState::Active.as_str())
        .filter_map(|d| d.id.parse().ok())
        .collect())
}
