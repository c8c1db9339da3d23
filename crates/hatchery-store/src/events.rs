//! The event log: appended in the same transaction as the change it records, read newest
//! first. `seq` is the monotonic cursor streams resume from.

use sqlx::{Any, Transaction};

use crate::{Store, StoreError};

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Wire name, e.g. `WORKSPACE_PROVISIONING`.
    pub event_type: &'static str,
    /// The workspace it is about, if any.
    pub workspace_id: Option<String>,
    /// The payload, a JSON object as text.
    pub payload: String,
}

impl NewEvent {
    /// An event about one workspace.
    #[must_use]
    pub fn about(event_type: &'static str, workspace_id: &str, payload: String) -> Self {
        Self {
            event_type,
            workspace_id: Some(workspace_id.to_owned()),
            payload,
        }
    }

    pub(crate) fn removed(workspace_id: &str, payload: String) -> Self {
        Self::about("WORKSPACE_REMOVED", workspace_id, payload)
    }
}

/// A stored event.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRow {
    /// The cursor: strictly increasing in commit order on both databases (one writer on
    /// SQLite; a lock taken before the seq is drawn on Postgres).
    pub seq: i64,
    pub id: String,
    pub event_type: String,
    pub workspace_id: Option<String>,
    /// JSON object text.
    pub payload: String,
    pub created_at: i64,
}

pub(crate) async fn insert_event(
    tx: &mut Transaction<'_, Any>,
    event: &NewEvent,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (id, event_type, workspace_id, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(event.event_type)
    .bind(&event.workspace_id)
    .bind(&event.payload)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The newest `limit` events, newest first; only one workspace's when `workspace_id` is
    /// given.
    pub async fn event_list(
        &self,
        workspace_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let query = match workspace_id {
            Some(id) => sqlx::query_as(
                "SELECT seq, id, event_type, workspace_id, payload, created_at FROM events \
                 WHERE workspace_id = $1 ORDER BY seq DESC LIMIT $2",
            )
            .bind(id.to_owned()),
            None => sqlx::query_as(
                "SELECT seq, id, event_type, workspace_id, payload, created_at FROM events \
                 ORDER BY seq DESC LIMIT $1",
            ),
        };
        Ok(query.bind(limit).fetch_all(&self.reader).await?)
    }

    /// Events after the cursor `after`, oldest first, at most `limit`; only one
    /// workspace's when `workspace_id` is given.
    pub async fn event_list_after(
        &self,
        after: i64,
        workspace_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let query = match workspace_id {
            Some(id) => sqlx::query_as(
                "SELECT seq, id, event_type, workspace_id, payload, created_at FROM events \
                 WHERE seq > $1 AND workspace_id = $3 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .bind(id.to_owned()),
            None => sqlx::query_as(
                "SELECT seq, id, event_type, workspace_id, payload, created_at FROM events \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(limit),
        };
        Ok(query.fetch_all(&self.reader).await?)
    }

    /// The newest cursor, 0 when there are no events.
    pub async fn event_last_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&self.reader)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    /// How many events are stored.
    pub async fn event_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&self.reader)
            .await?)
    }
}
