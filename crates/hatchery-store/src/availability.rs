//! Telling a database that cannot be reached right now from a query that failed: the first
//! is worth a retry once the database is back (the HTTP layer answers 503 with
//! `Retry-After`), the second is a bug or a refusal and retrying will not help.

use sqlx::error::DatabaseError;

use crate::StoreError;

/// SQLite's primary result code for "another connection holds the lock" (`SQLITE_BUSY`,
/// "database is locked"); its extended codes (`BUSY_RECOVERY`, `BUSY_SNAPSHOT`,
/// `BUSY_TIMEOUT`) share the low byte.
const SQLITE_BUSY: i32 = 5;

impl StoreError {
    /// The database could not be reached or would not serve the query now: the connection
    /// failed or was cut, no connection came free in time, the server is shutting down or
    /// starting, or (SQLite) another process held the lock past the busy timeout. Nothing
    /// was committed by the failed call unless its commit's answer was what got lost.
    ///
    /// A constraint violation, a bad query, a corrupt row or a type mismatch is not
    /// unavailability: retrying those gives the same answer.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Query(error) | Self::Connect { source: error, .. } => sqlx_unavailable(error),
            Self::UnsupportedUrl
            | Self::Migrate(_)
            | Self::SecretsKeyRotated
            | Self::Corrupt { .. } => false,
        }
    }
}

fn sqlx_unavailable(error: &sqlx::Error) -> bool {
    match error {
        // The socket failed, the TLS session or the wire protocol broke (a connection cut
        // mid-message), no connection came free before the acquire timeout (the pool
        // retries a refused connection until then), the pool was closed (shutting down),
        // or SQLite's connection thread died.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(error) => database_unavailable(error.as_ref()),
        _ => false,
    }
}

fn database_unavailable(error: &dyn DatabaseError) -> bool {
    if let Some(postgres) = error.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return postgres_unavailable(postgres.code());
    }
    if let Some(sqlite) = error.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        return sqlite
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(sqlite_unavailable);
    }
    false
}

/// Whether a Postgres SQLSTATE says the server, not the query, is the problem.
fn postgres_unavailable(sqlstate: &str) -> bool {
    // Class 08: connection exception (the connection failed or was lost).
    sqlstate.starts_with("08")
        || matches!(
            sqlstate,
            // admin_shutdown, crash_shutdown, cannot_connect_now (starting up or shutting
            // down): the server is going away or not there yet.
            "57P01" | "57P02" | "57P03"
            // idle_session_timeout: the server closed the session; a new one will do.
            | "57P05"
            // too_many_connections: every slot is taken for now.
            | "53300"
        )
}

/// Whether a SQLite (extended) result code is the lock held elsewhere past the busy timeout.
fn sqlite_unavailable(code: i32) -> bool {
    code & 0xff == SQLITE_BUSY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_level_failures_are_unavailable() {
        for error in [
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
            sqlx::Error::Io(std::io::ErrorKind::UnexpectedEof.into()),
            sqlx::Error::Protocol("connection closed mid-message".to_owned()),
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
        ] {
            assert!(StoreError::Query(error).is_unavailable());
        }
    }

    #[test]
    fn query_failures_are_not() {
        for error in [
            StoreError::Query(sqlx::Error::RowNotFound),
            StoreError::Query(sqlx::Error::ColumnNotFound("status".to_owned())),
            StoreError::Corrupt {
                table: "workspaces",
                detail: "bad JSON".to_owned(),
            },
            StoreError::SecretsKeyRotated,
            StoreError::UnsupportedUrl,
        ] {
            assert!(!error.is_unavailable(), "{error}");
        }
    }

    #[test]
    fn postgres_sqlstates() {
        for code in [
            "08000", "08003", "08006", "08001", "57P01", "57P02", "57P03", "53300",
        ] {
            assert!(postgres_unavailable(code), "{code}");
        }
        // unique_violation, foreign_key_violation, syntax_error, undefined_table,
        // serialization_failure, query_canceled, disk_full, database_dropped.
        for code in [
            "23505", "23503", "42601", "42P01", "40001", "57014", "53100", "57P04",
        ] {
            assert!(!postgres_unavailable(code), "{code}");
        }
    }

    #[test]
    fn sqlite_codes() {
        // BUSY, BUSY_RECOVERY, BUSY_SNAPSHOT, BUSY_TIMEOUT.
        for code in [5, 261, 517, 773] {
            assert!(sqlite_unavailable(code), "{code}");
        }
        // ERROR, LOCKED (a conflict inside this process), CONSTRAINT_UNIQUE, IOERR, FULL.
        for code in [1, 6, 2067, 10, 13] {
            assert!(!sqlite_unavailable(code), "{code}");
        }
    }

    /// Real errors from a real SQLite file: another connection holding the write lock past
    /// the busy timeout is unavailable; a unique violation and a bad query are not.
    #[tokio::test]
    async fn sqlite_lock_held_elsewhere_is_unavailable() {
        use sqlx::{Connection as _, Executor as _};
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let mut holder = sqlx::AnyConnection::connect(&url).await.expect("connect");
        holder
            .execute("PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY)")
            .await
            .expect("schema");
        let mut other = sqlx::AnyConnection::connect(&url).await.expect("connect");
        other
            .execute("PRAGMA busy_timeout = 50; INSERT INTO t VALUES ('a')")
            .await
            .expect("first insert");
        let duplicate = other
            .execute("INSERT INTO t VALUES ('a')")
            .await
            .expect_err("a duplicate");
        assert!(!StoreError::Query(duplicate).is_unavailable());
        let bad = other
            .execute("SELECT nothing FROM nowhere")
            .await
            .expect_err("a bad query");
        assert!(!StoreError::Query(bad).is_unavailable());
        holder
            .execute("BEGIN IMMEDIATE")
            .await
            .expect("take the write lock");
        let busy = other
            .execute("INSERT INTO t VALUES ('b')")
            .await
            .expect_err("the lock is held");
        let busy = StoreError::Query(busy);
        assert!(busy.is_unavailable(), "{busy}");
        holder.execute("ROLLBACK").await.expect("release");
        other
            .execute("INSERT INTO t VALUES ('b')")
            .await
            .expect("fine once released");
    }
}
