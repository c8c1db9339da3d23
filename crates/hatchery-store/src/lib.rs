//! hatchery's storage: workspaces, their generated files, events, provision jobs, sealed
//! secrets, workspace tokens, activity, delegations, queued A2A messages and server
//! settings, on SQLite (the embedded default) or Postgres.
//!
//! One set of queries serves both databases through sqlx's `Any` driver: every column is
//! text, a 64-bit integer, a double or bytes, and placeholders are `$n`, which both accept.
//! On SQLite, writes go through a single connection so transactions queue in the pool
//! instead of spinning on `SQLITE_BUSY`; reads use their own connections (WAL lets them run
//! beside a writer). On Postgres one pool serves both.

// Product code never unwraps what input can influence; tests may.
#![warn(clippy::unwrap_used)]

mod a2a_queue;
mod activity;
mod agents;
mod availability;
mod delegations;
mod events;
mod jobs;
mod page;
mod replicas;
mod secrets;
mod settings;
mod stats;
mod tokens;
mod workspaces;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Connection as _, Executor as _};

pub use a2a_queue::{Enqueued, NewQueuedMessage, QueuedMessageRow};
pub use activity::{ActivityFilter, ActivityRow};
pub use agents::{
    AgentSnapshot, LifecycleOutcome, LiveState, Provisioning, Registered, Registration,
};
pub use delegations::{DelegationInsert, DelegationReport, DelegationRow, Ending, NewDelegation};
pub use events::{EventRow, NewEvent};
pub use jobs::{ClaimedJob, JobLease, JobRow};
pub use secrets::{
    GLOBAL_SCOPE, KEY_CHECK_SETTING, KeyCheck, RotateOutcome, RotateRefusal, SealedSecret,
    SecretRow, workspace_scope,
};
pub use stats::Stats;
pub use tokens::{NewToken, TokenKind, TokenMatch, TokenRow};
pub use workspaces::{
    CreateOutcome, EarlierImports, ImportOutcome, ImportedWorkspace, NewWorkspace, Reconfiguration,
    RemovedWorkspaces, UpdateOutcome, WorkspaceFile, WorkspacePatch, WorkspaceRow,
};

// Pages bounded by bytes as well as rows, and the cap on event payloads.
pub use events::MAX_PAYLOAD_BYTES as MAX_EVENT_PAYLOAD_BYTES;
pub use page::Page;
pub use workspaces::Relation;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database is behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// An embedded SQLite file.
    Sqlite,
    /// A Postgres server.
    Postgres,
}

impl Database {
    /// The database a URL names.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// The name shown to people.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// What the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no database hatchery supports.
    #[error(
        "unsupported database URL: use sqlite://PATH or postgres://USER@HOST:PORT/DB (the password, if any, is not shown here)"
    )]
    UnsupportedUrl,
    /// The database could not be reached or opened.
    #[error("cannot open the {database} database: {source}")]
    Connect {
        /// Which database.
        database: &'static str,
        /// Why.
        source: sqlx::Error,
    },
    /// Migrations could not be applied.
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// A secret sealed under a key epoch that is no longer current: the secrets key was
    /// rotated since the key that sealed it was checked. Nothing was written.
    #[error("the secrets key was rotated: this value was sealed with the previous key")]
    SecretsKeyRotated,
    /// A row broke an invariant the schema cannot state (a bad JSON column, say).
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl StoreError {
    /// A unique or primary-key constraint refused the write.
    #[must_use]
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Self::Query(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

/// The database, opened and migrated.
#[derive(Debug, Clone)]
pub struct Store {
    database: Database,
    writer: AnyPool,
    reader: AnyPool,
    clock: Clock,
}

/// Where the store's "now" comes from: the system clock, or one a test moves by hand
/// (liveness and provisioning deadlines are decided on it).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock, in Unix microseconds.
    #[must_use]
    pub fn system() -> Self {
        Self(Arc::new(now_micros))
    }

    /// A clock that reads `now` (Unix microseconds) from a function.
    pub fn from_fn(now: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// Now, in Unix microseconds.
    #[must_use]
    pub fn now(&self) -> i64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Clock").field(&self.now()).finish()
    }
}

/// The SQLite file `hatchery serve` uses when no database URL is given.
pub const DEFAULT_SQLITE_FILE: &str = "hatchery.db";

/// The URL of the default SQLite file in `data_dir`.
#[must_use]
pub fn default_sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join(DEFAULT_SQLITE_FILE).display())
}

impl Store {
    /// Open the database `url` names (creating a SQLite file if needed) and apply
    /// migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let database = Database::of_url(url)?;
        let connect_error = |source| StoreError::Connect {
            database: database.as_str(),
            source,
        };
        let store = match database {
            Database::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                let writer = sqlite_pool(1).connect(&url).await.map_err(connect_error)?;
                // WAL is a property of the file: set once, before readers open it.
                writer.execute("PRAGMA journal_mode = WAL").await?;
                let reader = sqlite_pool(4).connect(&url).await.map_err(connect_error)?;
                Self {
                    database,
                    writer,
                    reader,
                    clock: Clock::system(),
                }
            }
            Database::Postgres => {
                // One direct connection first: a refused or misconfigured server fails
                // at once, instead of after the pool's retries.
                AnyConnection::connect(url)
                    .await
                    .map_err(connect_error)?
                    .close()
                    .await
                    .map_err(connect_error)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await
                    .map_err(connect_error)?;
                Self {
                    database,
                    writer: pool.clone(),
                    reader: pool,
                    clock: Clock::system(),
                }
            }
        };
        let migrator = match database {
            Database::Sqlite => &SQLITE_MIGRATIONS,
            Database::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&store.writer).await?;
        Ok(store)
    }

    /// The same store, reading "now" from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Now on the store's clock, in Unix microseconds.
    #[must_use]
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A write transaction that appends events. On Postgres it first takes the lock that
    /// orders events by commit (see the events trigger): taken before any row lock, so two
    /// such transactions never wait on each other in opposite orders.
    pub(crate) async fn begin_events(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        let mut tx = self.writer.begin().await?;
        if self.database == Database::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(4242001)")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Which database this is.
    #[must_use]
    pub fn database(&self) -> Database {
        self.database
    }

    /// Close every connection, waiting for those in use.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

fn sqlite_pool(connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _| {
            Box::pin(async move {
                // NORMAL is durable across application crashes in WAL mode; only a power
                // loss can drop the last commits, never corrupt the file.
                conn.execute(
                    "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000",
                )
                .await?;
                Ok(())
            })
        })
}

/// Now, in Unix microseconds: the stored form of every time.
#[must_use]
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A stored time as a `SystemTime`.
#[must_use]
pub fn micros_to_time(micros: i64) -> SystemTime {
    let micros = u64::try_from(micros).unwrap_or(0);
    UNIX_EPOCH + Duration::from_micros(micros)
}

impl From<hatchery_core::lifecycle::UnknownStatus> for StoreError {
    fn from(unknown: hatchery_core::lifecycle::UnknownStatus) -> Self {
        Self::Corrupt {
            table: "workspaces",
            detail: unknown.to_string(),
        }
    }
}

/// A status as a SQL literal, for queries whose text is built (the wire strings are ours
/// and plain: nothing to escape).
fn quoted(status: hatchery_core::WorkspaceStatus) -> String {
    format!("'{status}'")
}

/// The statuses `keep` holds, quoted for a SQL `IN (…)`.
fn status_list(keep: impl Fn(hatchery_core::WorkspaceStatus) -> bool) -> String {
    hatchery_core::WorkspaceStatus::ALL
        .into_iter()
        .filter(|status| keep(*status))
        .map(quoted)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A boolean as the 0 or 1 of an INTEGER column (SQLite has no boolean type; both databases
/// store it so).
fn bool_column(value: bool) -> i64 {
    i64::from(value)
}

/// An INTEGER 0/1 column on its way to a row's `bool` (`#[sqlx(try_from = "IntFlag")]`):
/// sqlx's `Any` driver does not decode an integer as a boolean.
#[derive(sqlx::Type)]
#[sqlx(transparent)]
struct IntFlag(i64);

impl From<IntFlag> for bool {
    fn from(flag: IntFlag) -> Self {
        flag.0 != 0
    }
}
