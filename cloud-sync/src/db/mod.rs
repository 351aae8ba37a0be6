//! The only module that speaks SQL. Every function here runs in a transaction that set its
//! tenant scope first (see [`Scope`]); row-level security in Postgres is the second line that
//! makes a forgotten scope return nothing instead of everything.
//!
//! - `admin`: regions, schools, enrollment tokens and snapshot partition upkeep.
//! - `accounts`: users and their grants, a caller's [`UserScope`], refresh-token families.
//! - `enroll`: redeeming an enrollment token for a gateway.
//! - `ingest`: merging a gateway's batch (one lane of one epoch), set-based, in one
//!   transaction.
//! - `liveness`: when each gateway last synced; marking silent gateways offline and back.
//! - `commands`: cloud → gateway commands (requested, delivered, confirmed).
//! - `audit`: the append-only audit log, and reading it within a scope.
//! - `directory`: what people read about regions, schools (with their latest numbers),
//!   rooms, devices and snapshot history.
//! - `alerts`: alerts as people read them (filters, history, statistics) and their notes.
//! - `users`: managing people within a scope.
//! - `realtime`: the stored realtime events (a reconnecting stream's catch-up) and their
//!   retention.

/// The email address of the person an actor column names (`user:<uuid>`), or `NULL` for any
/// other actor (a gateway, the admin CLI). People read an alert's history and the audit log by
/// who acted, not by an id; `users` has no row-level security, and only actors of rows the
/// scope already shows are looked up.
macro_rules! actor_email {
    ($column:literal) => {
        concat!(
            "(SELECT u.email FROM users u WHERE u.user_id = CASE WHEN ",
            $column,
            " ~ '^user:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' \
             THEN substr(",
            $column,
            ", 6)::uuid END)"
        )
    };
}

pub mod accounts;
pub mod admin;
pub mod alerts;
pub mod audit;
pub mod commands;
pub mod directory;
pub mod enroll;
pub mod ingest;
pub mod liveness;
pub mod realtime;
pub mod totp;
pub mod users;

use shared::ids::SchoolId;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};
use thiserror::Error;

/// A pool of connections to the service's database. sqlx's pool, named here so that no module
/// outside `db` names sqlx (see the owner table in `xtask/src/owners.rs`).
pub type Pool = sqlx::PgPool;
/// Where and as whom to connect: parsed from a `postgres://` URL, with
/// [`ConnectOptions::username`] and the like to adjust it.
pub type ConnectOptions = PgConnectOptions;
/// A transaction [`begin`] opened, its tenant scope set; it rolls back unless committed.
pub type Tx = Transaction<'static, Postgres>;

/// The migrations of `migrations/cloud`, for `cloud-sync migrate` and the tests.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/cloud");

/// The role the service connects as: not the owner, not a superuser, bound by row-level
/// security. The migrations create it.
pub const APP_ROLE: &str = "hallwatch_app";

/// Which schools a transaction may see and write.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// One school: a gateway, a school admin or viewer.
    School(&'a SchoolId),
    /// Several schools: a region admin.
    Schools(&'a [SchoolId]),
    /// Every school: a platform operator, admin commands and upkeep.
    AllSchools,
}

/// The scope of a person's requests, computed from their grants at each request
/// (`accounts::load_caller`): which schools, and whether they may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserScope {
    /// Which schools.
    pub reach: Reach,
    /// Viewers only read: their transactions are `READ ONLY`, so Postgres itself refuses a
    /// write a handler forgot to refuse.
    pub read_only: bool,
}

/// Which schools a person's scope covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every school (a superadmin).
    All,
    /// These schools, sorted, without duplicates (possibly none).
    Schools(Vec<SchoolId>),
}

impl UserScope {
    /// True when `school` is one of the scope's schools.
    pub fn covers(&self, school: &SchoolId) -> bool {
        match &self.reach {
            Reach::All => true,
            Reach::Schools(schools) => schools.binary_search(school).is_ok(),
        }
    }
}

/// What [`begin`] takes: a [`Scope`] (services, admin commands, upkeep) or a person's
/// [`UserScope`].
pub trait TenantScope {
    /// The schools the transaction may see and write.
    fn scope(&self) -> Scope<'_>;

    /// True when the transaction must not write at all.
    fn read_only(&self) -> bool {
        false
    }
}

impl TenantScope for Scope<'_> {
    fn scope(&self) -> Scope<'_> {
        *self
    }
}

impl TenantScope for UserScope {
    fn scope(&self) -> Scope<'_> {
        match &self.reach {
            Reach::All => Scope::AllSchools,
            Reach::Schools(schools) => Scope::Schools(schools),
        }
    }

    fn read_only(&self) -> bool {
        self.read_only
    }
}

impl<T: TenantScope + ?Sized> TenantScope for &T {
    fn scope(&self) -> Scope<'_> {
        (**self).scope()
    }

    fn read_only(&self) -> bool {
        (**self).read_only()
    }
}

/// A database failure. Callers log it and show "internal error". No sqlx type is part of it:
/// what sqlx said is only its text and source ([`SqlError`]).
#[derive(Debug, Error)]
pub enum DbError {
    /// The query or connection failed.
    #[error("database: {0}")]
    Sql(#[source] SqlError),
    /// Applying migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[source] SqlError),
    /// The service is connected as a role that row-level security would not bind.
    #[error(
        "the database role {role:?} is a superuser or bypasses row-level security; \
         connect the service as {APP_ROLE}"
    )]
    PrivilegedRole {
        /// The role connected as.
        role: String,
    },
    /// Certificates or randomness failed.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// A referenced row does not exist (e.g. the region of a new school).
    #[error("{0}")]
    NotFound(String),
    /// The row exists already (e.g. a school id taken).
    #[error("{0}")]
    Conflict(String),
    /// A stored row holds what the code never writes (e.g. a grant with an invalid id).
    #[error("invalid stored row: {0}")]
    Invalid(String),
    /// Hashing or token generation failed.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
}

/// What sqlx reported, kept for its message and source chain only.
#[derive(Debug, Error)]
#[error(transparent)]
pub struct SqlError(Box<dyn std::error::Error + Send + Sync>);

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        DbError::Sql(SqlError(Box::new(err)))
    }
}

impl From<sqlx::migrate::MigrateError> for DbError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        DbError::Migrate(SqlError(Box::new(err)))
    }
}

/// Opens a pool of connections.
pub async fn connect(options: PgConnectOptions, max: u32) -> Result<PgPool, DbError> {
    Ok(PgPoolOptions::new()
        .max_connections(max)
        .connect_with(options)
        .await?)
}

/// Applies every pending migration (run as the schema owner, not as [`APP_ROLE`]).
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Proof that the pool hands out a connection and Postgres answers: the service watchdog's
/// check. Touches no table, so it needs no scope.
pub async fn ping(pool: &PgPool) -> Result<(), DbError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// Refuses a pool whose role is a superuser or bypasses row-level security: the service must
/// run as [`APP_ROLE`] (or a role like it) so a forgotten scope cannot leak.
pub async fn ensure_unprivileged(pool: &PgPool) -> Result<(), DbError> {
    let (role, privileged): (String, bool) = sqlx::query_as(
        "SELECT rolname::text, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    if privileged {
        return Err(DbError::PrivilegedRole { role });
    }
    Ok(())
}

/// Begins a transaction and sets its tenant scope with `SET LOCAL` semantics (`set_config(...,
/// true)`), so the scope ends with the transaction and never leaks to the next user of the
/// pooled connection. A read-only scope (a viewer's) makes the transaction `READ ONLY`.
pub async fn begin(pool: &PgPool, scope: impl TenantScope) -> Result<Tx, DbError> {
    Ok(begin_sql(pool, scope).await?)
}

/// [`begin`] for the module's own helpers, which return sqlx's error.
async fn begin_sql(pool: &PgPool, scope: impl TenantScope) -> Result<Tx, sqlx::Error> {
    // `BEGIN READ ONLY` rather than a `SET TRANSACTION` after it: one round trip fewer.
    let mut tx = if scope.read_only() {
        pool.begin_with("BEGIN READ ONLY").await?
    } else {
        pool.begin().await?
    };
    set_scope(&mut tx, scope.scope()).await?;
    Ok(tx)
}

/// Replaces the scope of the transaction `conn` is in (e.g. once enrollment has found the
/// token's school).
pub(crate) async fn set_scope(
    conn: &mut sqlx::PgConnection,
    scope: Scope<'_>,
) -> Result<(), sqlx::Error> {
    let (schools, all) = match scope {
        Scope::School(school) => (school.as_str().to_owned(), "off"),
        Scope::Schools(schools) => (join(schools), "off"),
        Scope::AllSchools => (String::new(), "on"),
    };
    sqlx::query(
        "SELECT set_config('hallwatch.school_ids', $1, true), \
                set_config('hallwatch.all_schools', $2, true)",
    )
    .bind(schools)
    .bind(all)
    .execute(conn)
    .await?;
    Ok(())
}

/// A list query whose `WHERE` holds only the conditions the request asked for.
///
/// Each combination of filters is its own SQL text, so its own prepared statement with a plan
/// made for it. One static text with `($1 IS NULL OR col = $1)` for every optional filter
/// looks like one row to the planner once it switches to a generic plan (after five
/// executions), and that plan reads and sorts the whole table: the audit log's grew with
/// every request.
pub(crate) struct Filtered {
    sql: QueryBuilder<Postgres>,
    conditions: usize,
}

impl Filtered {
    /// Starts with `select` (everything up to the `WHERE`).
    pub(crate) fn new(select: &'static str) -> Self {
        Self {
            sql: QueryBuilder::new(select),
            conditions: 0,
        }
    }

    /// The next condition: push it (with its binds) onto what this returns.
    pub(crate) fn and(&mut self) -> &mut QueryBuilder<Postgres> {
        self.sql.push(if self.conditions == 0 {
            " WHERE "
        } else {
            " AND "
        });
        self.conditions += 1;
        &mut self.sql
    }

    /// After the conditions: push the rest (`ORDER BY`, `LIMIT`) onto what this returns.
    pub(crate) fn then(&mut self) -> &mut QueryBuilder<Postgres> {
        &mut self.sql
    }

    /// Runs the query in a transaction of `scope`; its rows.
    pub(crate) async fn fetch_all<T>(
        &mut self,
        pool: &PgPool,
        scope: impl TenantScope,
    ) -> Result<Vec<T>, DbError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let mut tx = begin(pool, scope).await?;
        let rows = self.sql.build_query_as().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    }
}

/// School ids joined with commas; ids cannot contain commas (see `shared::ids`).
fn join(schools: &[SchoolId]) -> String {
    let ids: Vec<&str> = schools.iter().map(SchoolId::as_str).collect();
    ids.join(",")
}

/// True when the error is a unique-constraint violation.
fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// True when the error is a foreign-key violation.
fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}
