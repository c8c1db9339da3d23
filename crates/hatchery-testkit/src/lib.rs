//! Test harness: each test gets a database of its own, on SQLite (a fresh file) or on
//! the throwaway Postgres server `scripts/with-postgres` starts for the test run.
//!
//! The Postgres server's URL arrives in `HATCHERY_TEST_POSTGRES_URL`. Without it a
//! Postgres test fails (it does not skip): the suite must test both databases for real.

pub mod fake_kube;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use hatchery_store::Clock;

use sqlx::{AnyConnection, Connection as _, Executor as _};

/// The variable `scripts/with-postgres` sets to the throwaway server's admin URL.
pub const POSTGRES_URL_VAR: &str = "HATCHERY_TEST_POSTGRES_URL";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A fresh SQLite file in the test's temporary directory.
    Sqlite,
    /// A fresh database on the throwaway Postgres server.
    Postgres,
}

/// A database for one test, and the temporary directory that holds its files.
#[derive(Debug)]
pub struct TestDb {
    /// Which database.
    pub db: Db,
    /// The URL to hand to the server.
    pub url: String,
    /// The SQLite file (`None` on Postgres).
    pub sqlite_file: Option<PathBuf>,
}

impl TestDb {
    /// A fresh database of kind `db`; SQLite files go in `dir`.
    ///
    /// # Panics
    /// On Postgres, when `HATCHERY_TEST_POSTGRES_URL` is unset or the server refuses: the
    /// test fails with the reason.
    pub async fn create(db: Db, dir: &std::path::Path) -> Self {
        match db {
            Db::Sqlite => {
                let file = dir.join("test.db");
                Self {
                    db,
                    url: format!("sqlite://{}", file.display()),
                    sqlite_file: Some(file),
                }
            }
            Db::Postgres => Self {
                db,
                url: fresh_postgres_database().await,
                sqlite_file: None,
            },
        }
    }
}

async fn fresh_postgres_database() -> String {
    let admin_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_URL_VAR} is not set: run the suite through `scripts/test` (or wrap \
             `cargo test` in `scripts/with-postgres`), which starts a throwaway Postgres"
        )
    });
    sqlx::any::install_default_drivers();
    let mut admin = AnyConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test Postgres at {admin_url}: {e}"));
    let name = format!("hatchery_test_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    let _ = admin.close().await;
    match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("{POSTGRES_URL_VAR} must end in /DATABASE: {admin_url}"),
    }
}

/// Define tests once, run them on both databases: `both_databases!(a, b)` makes
/// `sqlite::a`, `postgres::a`, … each calling `async fn a(db: Db)` of the enclosing module.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Db::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Db::Postgres).await;
                }
            )+
        }
    };
}

/// A clock the test moves by hand; starts at the real time. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl Default for ManualClock {
    fn default() -> Self {
        Self(Arc::new(AtomicI64::new(hatchery_store::now_micros())))
    }
}

impl ManualClock {
    /// Move time forward.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.0.fetch_add(micros, Ordering::SeqCst);
    }

    /// Now, in Unix microseconds.
    #[must_use]
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// The store clock that reads this one.
    #[must_use]
    pub fn clock(&self) -> Clock {
        let time = Arc::clone(&self.0);
        Clock::from_fn(move || time.load(Ordering::SeqCst))
    }
}
