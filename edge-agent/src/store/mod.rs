//! The gateway's SQLite database, `DATA_DIR/edge.db`: the only module on the edge that speaks
//! SQL. Callers get a typed API and typed rows (`DeviceId`, `Label`, `UnixMillis`).
//!
//! Opening checks the file's integrity, sets WAL with `synchronous=FULL` (a committed row
//! survives power loss) and foreign keys on, and applies pending migrations.

mod alerts;
mod devices;
mod events;
mod integrations;
mod list;
mod migrate;
mod model;
mod outbox;
mod profiles;
mod telemetry;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use shared::UnixMillis;
use shared::ids::{DeviceId, SchoolId};

use crate::integration::IntegrationId;

pub use alerts::{AlertEventRow, AlertFilter, AlertRow, PressKey};
pub use devices::CrlUpdate;
pub use events::{StoredEvent, Topic};
pub use model::{
    CertRole, DeviceKind, DeviceRow, DeviceState, IntegrationRow, IntegrationState, NewDevice,
};
pub use outbox::LaneBacklog;
pub use profiles::{DeviceProfile, HealthUpdate};
pub use shared::sync::Lane;
pub use telemetry::{DeviceStatusRow, OccupancyRow, SnapshotRow};

pub use crate::layout::DB_FILE;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{} already exists", .0.display())]
    AlreadyExists(PathBuf),
    #[error("{} does not exist (run `edge-agent init` first)", .0.display())]
    Missing(PathBuf),
    #[error("the database failed its integrity check: {0}")]
    Corrupt(String),
    #[error(
        "the database has {applied} migrations applied but this edge-agent knows only {known}; \
         it was written by a newer version"
    )]
    NewerSchema { applied: usize, known: usize },
    #[error("the database holds an invalid {what}: {value:?}")]
    BadValue { what: &'static str, value: String },
    #[error("device {0} is already registered")]
    DeviceExists(DeviceId),
    #[error("no device {0} is registered")]
    UnknownDevice(DeviceId),
    #[error("device {0} is already revoked")]
    AlreadyRevoked(DeviceId),
    #[error("integration {0} already exists (revoked integrations keep their id)")]
    IntegrationExists(IntegrationId),
    #[error("no integration {0} exists (see `edge-agent integration list`)")]
    UnknownIntegration(IntegrationId),
    #[error("integration {0} is already revoked")]
    IntegrationAlreadyRevoked(IntegrationId),
    #[error("an outbox record was written before the agent started an epoch")]
    NoEpoch,
    #[error("the {lane} outbox record at seq {seq} is unreadable: {reason}")]
    UnreadableRecord {
        lane: shared::sync::Lane,
        seq: shared::ids::Seq,
        reason: String,
    },
}

/// How long a connection waits for another's write lock (a CLI command writing while the
/// agent runs) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The gateway's database, open for writing. The running agent has one, owned by its engine.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// What outbox records are written under; set by [`Store::start_epoch`].
    epoch: Option<shared::ids::Epoch>,
}

/// One write transaction of the engine: everything a batch of inputs changes, with its outbox
/// records and stream events, committed together or not at all.
#[derive(Debug)]
pub struct Batch<'a> {
    tx: rusqlite::Transaction<'a>,
    epoch: Option<shared::ids::Epoch>,
    /// Which lanes of the outbox this transaction appended to.
    appended: std::cell::Cell<[bool; 2]>,
}

/// A read-only connection for the dashboard's queries; WAL lets it read while the engine
/// writes.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
}

impl Store {
    /// Creates a new database at `path` for `school`; refuses if a file is there already.
    pub fn create(path: &Path, school: &SchoolId, now: UnixMillis) -> Result<Store, StoreError> {
        if path.exists() {
            return Err(StoreError::AlreadyExists(path.to_owned()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let mut store = Store::setup(Connection::open_with_flags(path, flags)?)?;
        let tx = store.conn.transaction()?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('school_id', ?1), ('created_at', ?2)",
            (school.as_str(), now.get().to_string()),
        )?;
        tx.commit()?;
        Ok(store)
    }

    /// Opens the existing database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing(path.to_owned()));
        }
        Store::setup(Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE,
        )?)
    }

    /// Starts a write transaction. `IMMEDIATE` takes the write lock up front, so a concurrent
    /// writer waits (up to the busy timeout) instead of failing half-way.
    pub fn batch(&mut self) -> Result<Batch<'_>, StoreError> {
        let epoch = self.epoch;
        Ok(Batch {
            tx: self.write_transaction()?,
            epoch,
            appended: std::cell::Cell::new([false; 2]),
        })
    }

    /// A write transaction for the installer's commands, `IMMEDIATE` for the same reason as
    /// [`Store::batch`]: they run while the agent writes, and a deferred transaction that read
    /// before the agent committed could not upgrade to a write (SQLite answers "database is
    /// locked" at once, without waiting).
    fn write_transaction(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }

    fn setup(conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "SQLite did not switch to WAL");
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        let mut check = conn.prepare("PRAGMA integrity_check")?;
        let problems = check
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        drop(check);
        if problems != ["ok"] {
            let report = problems.join("; ");
            tracing::error!(%report, "edge database failed its integrity check");
            return Err(StoreError::Corrupt(report));
        }
        tracing::info!("edge database integrity check: ok");
        let mut store = Store { conn, epoch: None };
        migrate::apply(&mut store.conn)?;
        Ok(store)
    }

    /// The school this gateway serves, as recorded by `init`.
    pub fn school_id(&self) -> Result<SchoolId, StoreError> {
        let value: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'school_id'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let value = value.unwrap_or_default();
        SchoolId::try_from(value.as_str()).map_err(|_| StoreError::BadValue {
            what: "school id",
            value,
        })
    }

    /// Records a certificate for the gateway itself (CA or server) and returns its serial.
    pub fn allocate_gateway_serial(
        &mut self,
        role: CertRole,
        not_before: UnixMillis,
        not_after: UnixMillis,
    ) -> Result<u64, StoreError> {
        self.conn.execute(
            "INSERT INTO certificates (role, not_before, not_after) VALUES (?1, ?2, ?3)",
            (role.as_str(), not_before.get(), not_after.get()),
        )?;
        serial_from(self.conn.last_insert_rowid())
    }
}

impl Batch<'_> {
    /// Makes the batch durable (`synchronous=FULL`: on disk when this returns).
    pub fn commit(self) -> Result<(), StoreError> {
        self.tx.commit()?;
        Ok(())
    }

    /// Runs `work` inside a savepoint: kept if it succeeds, undone if it fails, and either way
    /// the batch goes on. For upkeep that must never cost the batch the inputs it carries.
    /// The outer error is the database failing to set or clear the savepoint.
    pub fn attempt<T>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, StoreError>,
    ) -> Result<Result<T, StoreError>, StoreError> {
        self.tx.execute_batch("SAVEPOINT attempt")?;
        match work(self) {
            Ok(value) => {
                self.tx.execute_batch("RELEASE attempt")?;
                Ok(Ok(value))
            }
            Err(e) => {
                self.tx
                    .execute_batch("ROLLBACK TO attempt; RELEASE attempt")?;
                Ok(Err(e))
            }
        }
    }
}

impl Reader {
    /// Reads the schema: the database file is there, readable and not locked out for longer
    /// than the busy timeout.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })?;
        Ok(())
    }

    /// Opens `path` (created and migrated by a [`Store`]) for reading only.
    pub fn open(path: &Path) -> Result<Reader, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing(path.to_owned()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(Reader { conn })
    }
}

impl Reader {
    /// `PRAGMA integrity_check`: `["ok"]`, or the problems found (at most 20). Read-only: it
    /// reads one snapshot and takes no lock a running agent would wait for.
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let mut check = self.conn.prepare("PRAGMA integrity_check(20)")?;
        let rows = check
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Writes a consistent copy of the database, as of one moment, to `dest` (a new file),
    /// while the agent goes on writing (`VACUUM INTO`, read-only on this side).
    pub fn copy_into(&self, dest: &Path) -> Result<(), StoreError> {
        let dest = dest.to_str().ok_or_else(|| StoreError::BadValue {
            what: "backup path (not UTF-8)",
            value: dest.to_string_lossy().into_owned(),
        })?;
        self.conn.execute("VACUUM INTO ?1", [dest])?;
        Ok(())
    }

    /// Outbox bytes and rows waiting for the cloud.
    pub fn outbox_bytes(&self) -> Result<u64, StoreError> {
        let bytes: i64 = self.conn.query_row(
            "SELECT coalesce(sum(length(body)), 0) FROM outbox",
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }
}

fn bad_value(what: &'static str, value: &str) -> StoreError {
    StoreError::BadValue {
        what,
        value: value.to_owned(),
    }
}

fn serial_from(rowid: i64) -> Result<u64, StoreError> {
    u64::try_from(rowid).map_err(|_| StoreError::BadValue {
        what: "certificate serial",
        value: rowid.to_string(),
    })
}
