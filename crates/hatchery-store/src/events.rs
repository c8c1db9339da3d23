//! The event log: appended in the same transaction as the change it records, read newest
//! first. `seq` is the monotonic cursor streams resume from.
//!
//! Retention deletes the oldest events, always a prefix of the log, and records the
//! highest seq it deleted (the pruned horizon, in `settings`, in the same transaction): a
//! cursor below the horizon may have lost events, and readers say so instead of skipping
//! them.

use hatchery_core::EventKind;
use sqlx::{Any, Transaction};

use crate::page::{Budgeted, Page, budgeted, page};
use crate::{Store, StoreError};

/// The largest event payload stored, in bytes of JSON text. What agents put into events
/// (their URL, agent card and sample error) is capped below this at the API, so only a
/// server-written payload could exceed it: it is then stored as
/// `{"truncated":true,"original_bytes":N}` (and logged), never refused, so the change it
/// records is not lost with it.
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// The settings row that holds the pruned horizon: the highest seq retention deleted.
pub const PRUNED_THROUGH_SETTING: &str = "events_pruned_through";

/// The columns of an event, and its payload's size in bytes (`size`, for budgeted pages).
const SIZED_COLUMNS: &str =
    "seq, id, event_type, workspace_id, payload, created_at, octet_length(payload) AS size";

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// What happened.
    pub kind: EventKind,
    /// The workspace it is about, if any.
    pub workspace_id: Option<String>,
    /// The payload, a JSON object as text.
    pub payload: String,
}

impl NewEvent {
    /// An event about one workspace.
    #[must_use]
    pub fn about(kind: EventKind, workspace_id: &str, payload: String) -> Self {
        Self {
            kind,
            workspace_id: Some(workspace_id.to_owned()),
            payload,
        }
    }

    pub(crate) fn removed(workspace_id: &str, payload: String) -> Self {
        Self::about(EventKind::WorkspaceRemoved, workspace_id, payload)
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
    let oversized;
    let payload = if event.payload.len() > MAX_PAYLOAD_BYTES {
        tracing::warn!(
            event_type = event.kind.as_str(),
            workspace_id = ?event.workspace_id,
            bytes = event.payload.len(),
            limit = MAX_PAYLOAD_BYTES,
            "event payload over the limit: stored as a truncation marker"
        );
        oversized = format!(
            "{{\"truncated\":true,\"original_bytes\":{}}}",
            event.payload.len()
        );
        &oversized
    } else {
        &event.payload
    };
    sqlx::query(
        "INSERT INTO events (id, event_type, workspace_id, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(event.kind.as_str())
    .bind(&event.workspace_id)
    .bind(payload)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Write `event`, the record of what `tx` did, and commit `tx`: the event stands if and
/// only if the change does.
pub(crate) async fn commit_with_event(
    mut tx: Transaction<'_, Any>,
    event: &NewEvent,
    now: i64,
) -> Result<(), StoreError> {
    insert_event(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(())
}

/// The highest seq that must go for at most `keep` events to stay (`i64::MIN` for none).
/// Seqs are not dense (Postgres draws two per event, and a rolled-back insert leaves a
/// gap), so the count is counted, not computed from seqs: an index walk of `keep` entries,
/// done only when the span of seqs says there may be more than `keep` events.
async fn count_floor(tx: &mut Transaction<'_, Any>, keep: i64) -> Result<i64, StoreError> {
    let (oldest, newest): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT MIN(seq), MAX(seq) FROM events")
            .fetch_one(&mut **tx)
            .await?;
    let (Some(oldest), Some(newest)) = (oldest, newest) else {
        return Ok(i64::MIN);
    };
    if newest.saturating_sub(oldest) < keep {
        return Ok(i64::MIN);
    }
    let floor: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET $1")
            .bind(keep)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(floor.unwrap_or(i64::MIN))
}

impl Store {
    /// The newest events, newest first, at most `limit` of them and no more than about
    /// `budget` bytes of payload (see [`Page`]); only one workspace's when `workspace_id`
    /// is given.
    pub async fn event_list(
        &self,
        workspace_id: Option<&str>,
        limit: i64,
        budget: i64,
    ) -> Result<Page<EventRow>, StoreError> {
        self.event_page(None, workspace_id, limit, budget).await
    }

    /// Events after the cursor `after`, oldest first, at most `limit` of them and no more
    /// than about `budget` bytes of payload (see [`Page`]); only one workspace's when
    /// `workspace_id` is given. Whether retention deleted events after the cursor is for
    /// the caller to ask afterwards ([`Store::event_pruned_through`]): asked after the
    /// read, a horizon at or below the cursor proves nothing was skipped.
    pub async fn event_list_after(
        &self,
        after: i64,
        workspace_id: Option<&str>,
        limit: i64,
        budget: i64,
    ) -> Result<Page<EventRow>, StoreError> {
        self.event_page(Some(after), workspace_id, limit, budget)
            .await
    }

    /// One page of the log: after a cursor oldest first, without one newest first.
    async fn event_page(
        &self,
        after: Option<i64>,
        workspace_id: Option<&str>,
        limit: i64,
        budget: i64,
    ) -> Result<Page<EventRow>, StoreError> {
        // $1 is the limit and $2 the budget; the conditions' values follow.
        let mut conditions = Vec::new();
        if after.is_some() {
            conditions.push(format!("seq > ${}", conditions.len() + 3));
        }
        if workspace_id.is_some() {
            conditions.push(format!("workspace_id = ${}", conditions.len() + 3));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let order = if after.is_some() { "seq" } else { "seq DESC" };
        let sql = budgeted(
            &format!("SELECT {SIZED_COLUMNS} FROM events{filter} ORDER BY {order} LIMIT $1"),
            order,
            "$2",
        );
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .bind(budget);
        if let Some(after) = after {
            query = query.bind(after);
        }
        if let Some(id) = workspace_id {
            query = query.bind(id.to_owned());
        }
        let rows: Vec<Budgeted<EventRow>> = query.fetch_all(&self.reader).await?;
        Ok(page(rows, limit, budget))
    }

    /// The newest cursor: the highest seq stored or pruned, 0 when there never were
    /// events. (Once retention emptied the log, the pruned horizon is the newest cursor:
    /// new events are numbered above it.)
    pub async fn event_last_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&self.reader)
            .await?;
        Ok(seq.unwrap_or(0).max(self.event_pruned_through().await?))
    }

    /// The pruned horizon: the highest seq retention deleted, 0 if it never deleted any.
    /// A cursor below it may have lost events; one at or above it lost none.
    pub async fn event_pruned_through(&self) -> Result<i64, StoreError> {
        match self.setting_get(PRUNED_THROUGH_SETTING).await? {
            None => Ok(0),
            Some(text) => text.parse().map_err(|_| StoreError::Corrupt {
                table: "settings",
                detail: format!("{PRUNED_THROUGH_SETTING} is {text:?}, not a seq"),
            }),
        }
    }

    /// Retention: delete, oldest first, at most `batch` events that are older than
    /// `before` (Unix microseconds) or, with `keep`, not among the `keep` newest; returns
    /// how many went. Only a prefix of the log goes (the first event that
    /// is to stay stops the pass), and the pruned horizon moves to the highest seq deleted
    /// in the same transaction, so no reader can miss a deletion. Safe on every replica at
    /// once: the horizon only ever grows.
    pub async fn event_prune(
        &self,
        before: i64,
        keep: Option<i64>,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let oldest: Vec<(i64, i64)> =
            sqlx::query_as("SELECT seq, created_at FROM events ORDER BY seq LIMIT $1")
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
        let floor = match keep {
            Some(keep) => count_floor(&mut tx, keep).await?,
            None => i64::MIN,
        };
        let Some(through) = oldest
            .iter()
            .take_while(|(seq, created_at)| *created_at < before || *seq <= floor)
            .map(|(seq, _)| *seq)
            .last()
        else {
            return Ok(0);
        };
        // Nothing below `through` can appear later: seqs are drawn in commit order.
        let deleted = sqlx::query("DELETE FROM events WHERE seq <= $1")
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE \
             SET value = CASE WHEN CAST(settings.value AS BIGINT) < CAST(excluded.value AS BIGINT) \
             THEN excluded.value ELSE settings.value END",
        )
        .bind(PRUNED_THROUGH_SETTING)
        .bind(through.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// How many events are stored.
    pub async fn event_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&self.reader)
            .await?)
    }
}
