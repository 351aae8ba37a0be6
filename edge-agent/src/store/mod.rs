//! The gateway's SQLite database, `DATA_DIR/edge.db`: the only module on the edge that speaks
//! SQL. Callers get a typed API and typed rows (`DeviceId`, `Label`, `UnixMillis`).
//!
//! Opening checks the file's integrity, sets WAL with `synchronous=FULL` (a committed row
//! survives power loss) and foreign keys on, and applies pending migrations.

mod devices;
mod list;
mod migrate;
mod model;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use shared::UnixMillis;
use shared::ids::{DeviceId, SchoolId};

pub use devices::CrlUpdate;
pub use model::{CertRole, DeviceKind, DeviceRow, DeviceState, NewDevice};

/// The database's file name inside the data directory.
pub const DB_FILE: &str = "edge.db";

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
}

/// An open connection to the gateway's database.
#[derive(Debug)]
pub struct Store {
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

    fn setup(conn: Connection) -> Result<Store, StoreError> {
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
        tracing::debug!("edge database integrity check: ok");
        let mut store = Store { conn };
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

fn serial_from(rowid: i64) -> Result<u64, StoreError> {
    u64::try_from(rowid).map_err(|_| StoreError::BadValue {
        what: "certificate serial",
        value: rowid.to_string(),
    })
}
