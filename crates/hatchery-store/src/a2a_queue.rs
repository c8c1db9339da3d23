//! Queued A2A messages: a `message/send` stored because its target could not take it,
//! delivered per target in the order stored, one at a time. Claimed for delivery with a
//! lease, as delegations are: a runner that dies mid-call leaves its message `dispatched`
//! with a lease that runs out, and another claim takes it again. Every status change is a
//! compare-and-set on the status it changes from.

use hatchery_core::QueuedMessageStatus;

use crate::{Store, StoreError};

/// The columns of a [`QueuedMessageRow`].
const COLUMNS: &str = "seq, id, workspace_id, caller, method, body, message_id, status, error, \
    attempts, created_at, updated_at";

/// What makes a message due for a claim at `now` (a placeholder): dispatched under a lease
/// that ran out (its runner died), or queued, past its back-off, with nothing of its
/// target ahead of it (an older one queued, or one being dispatched), so a target gets its
/// messages in order and one at a time.
fn due(now: &str) -> String {
    format!(
        "(q.status = 'dispatched' AND q.lease_until < {now}) \
         OR (q.status = 'queued' AND (q.not_before IS NULL OR q.not_before <= {now}) \
         AND NOT EXISTS (SELECT 1 FROM a2a_queue o WHERE o.workspace_id = q.workspace_id \
         AND (o.status = 'dispatched' OR (o.status = 'queued' AND o.seq < q.seq))))"
    )
}

/// A stored message.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueuedMessageRow {
    /// Its place in the order of delivery.
    pub seq: i64,
    /// The id its caller was told.
    pub id: String,
    /// The target.
    pub workspace_id: String,
    /// A workspace id, or `operator`.
    pub caller: String,
    pub method: String,
    /// The normalized JSON-RPC request.
    pub body: String,
    pub message_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: QueuedMessageStatus,
    /// Why it failed, or (queued) why it waits.
    pub error: Option<String>,
    /// How many times its delivery was claimed.
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQueuedMessage {
    /// The target.
    pub workspace_id: String,
    /// A workspace id, or `operator`.
    pub caller: String,
    /// The JSON-RPC method.
    pub method: String,
    /// The normalized JSON-RPC request.
    pub body: String,
    /// `params.message.messageId`, if any.
    pub message_id: Option<String>,
}

/// What an enqueue came to: the live message (new, or the one with the same caller and
/// `messageId` already queued), and how many of its target's messages are live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The message.
    pub row: QueuedMessageRow,
    /// Stored now (false: the same message was already queued).
    pub created: bool,
    /// The target's queued and dispatched messages, this one included.
    pub depth: i64,
}

impl Store {
    /// Queue a message, unless the same caller's message with the same `messageId` is
    /// already queued or being dispatched to the target: then that one.
    #[tracing::instrument(skip(self, message), fields(workspace_id = %message.workspace_id))]
    pub async fn a2a_queue_insert(
        &self,
        message: &NewQueuedMessage,
    ) -> Result<Enqueued, StoreError> {
        let insert = format!(
            "INSERT INTO a2a_queue (id, workspace_id, caller, method, body, message_id, status, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7) \
             ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
        );
        let existing = format!(
            "SELECT {COLUMNS} FROM a2a_queue WHERE workspace_id = $1 AND caller = $2 \
             AND message_id = $3 AND status IN ('queued', 'dispatched')"
        );
        // The live holder of the messageId may end between the conflict and the read:
        // then the insert is tried again.
        for _ in 0..3 {
            let created: Option<QueuedMessageRow> =
                sqlx::query_as(sqlx::AssertSqlSafe(insert.clone()))
                    .bind(uuid::Uuid::new_v4().hyphenated().to_string())
                    .bind(&message.workspace_id)
                    .bind(&message.caller)
                    .bind(&message.method)
                    .bind(&message.body)
                    .bind(&message.message_id)
                    .bind(self.now())
                    .fetch_optional(&self.writer)
                    .await?;
            let (row, created) = if let Some(row) = created {
                (row, true)
            } else {
                let found: Option<QueuedMessageRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(existing.clone()))
                        .bind(&message.workspace_id)
                        .bind(&message.caller)
                        .bind(&message.message_id)
                        .fetch_optional(&self.writer)
                        .await?;
                match found {
                    Some(row) => (row, false),
                    None => continue,
                }
            };
            let depth = self.a2a_queue_depth(&message.workspace_id).await?;
            return Ok(Enqueued {
                row,
                created,
                depth,
            });
        }
        Err(StoreError::Corrupt {
            table: "a2a_queue",
            detail: format!(
                "an enqueue for workspace {} conflicted with no live message",
                message.workspace_id
            ),
        })
    }

    /// How many messages to `workspace_id` are queued or being dispatched.
    pub async fn a2a_queue_depth(&self, workspace_id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM a2a_queue WHERE workspace_id = $1 \
             AND status IN ('queued', 'dispatched')",
        )
        .bind(workspace_id)
        .fetch_one(&self.writer)
        .await?)
    }

    /// The newest `limit` messages queued for `workspace_id`, newest first.
    pub async fn a2a_queue_list(
        &self,
        workspace_id: &str,
        limit: i64,
    ) -> Result<Vec<QueuedMessageRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM a2a_queue WHERE workspace_id = $1 ORDER BY seq DESC LIMIT $2"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(workspace_id)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?)
    }

    /// Claim the next message due for delivery for `owner` until `lease_until`: it goes
    /// `dispatched`. One runner gets each: SQLite has one writer; Postgres skips rows
    /// another claim holds, and a target's next message stays behind one another claim
    /// holds (the older one is still `queued` to it, or already `dispatched`). Nothing due
    /// costs one read.
    pub async fn a2a_queue_claim(
        &self,
        owner: &str,
        lease_until: i64,
    ) -> Result<Option<QueuedMessageRow>, StoreError> {
        let now = self.now();
        let any_due: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM a2a_queue q WHERE {} LIMIT 1",
            due("$1")
        )))
        .bind(now)
        .fetch_optional(&self.reader)
        .await?;
        if any_due.is_none() {
            return Ok(None);
        }
        let lock = match self.database {
            crate::Database::Sqlite => "",
            crate::Database::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE a2a_queue SET status = 'dispatched', lease_owner = $1, lease_until = $2, \
             attempts = attempts + 1, not_before = NULL, error = NULL, updated_at = $3, \
             version = version + 1 \
             WHERE seq = (SELECT q.seq FROM a2a_queue q WHERE {} ORDER BY q.seq LIMIT 1{lock}) \
             RETURNING {COLUMNS}",
            due("$3")
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(&self.writer)
            .await?)
    }

    /// Extend `owner`'s lease on a message it is dispatching; `false` when it no longer
    /// holds it.
    pub async fn a2a_queue_renew(
        &self,
        id: &str,
        owner: &str,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE a2a_queue SET lease_until = $3 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'dispatched'",
        )
        .bind(id)
        .bind(owner)
        .bind(lease_until)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    /// End a message `owner` is dispatching: `delivered`, or `failed` with `error`;
    /// `false` (nothing written) when it no longer holds it.
    pub async fn a2a_queue_finish(
        &self,
        id: &str,
        owner: &str,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let status = if error.is_some() {
            QueuedMessageStatus::Failed
        } else {
            QueuedMessageStatus::Delivered
        };
        let finished = sqlx::query(
            "UPDATE a2a_queue SET status = $3, error = $4, lease_owner = NULL, \
             lease_until = NULL, updated_at = $5, version = version + 1 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'dispatched'",
        )
        .bind(id)
        .bind(owner)
        .bind(status.as_str())
        .bind(error)
        .bind(self.now())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(finished == 1)
    }

    /// Put a message `owner` is dispatching back to `queued` (still first of its target),
    /// to be tried again after `not_before`, saying why it waits; `false` when it no longer
    /// holds it.
    pub async fn a2a_queue_defer(
        &self,
        id: &str,
        owner: &str,
        not_before: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let deferred = sqlx::query(
            "UPDATE a2a_queue SET status = 'queued', not_before = $3, error = $4, \
             lease_owner = NULL, lease_until = NULL, updated_at = $5, version = version + 1 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'dispatched'",
        )
        .bind(id)
        .bind(owner)
        .bind(not_before)
        .bind(reason)
        .bind(self.now())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(deferred == 1)
    }

    /// Delete ended messages last changed before `before` (retention); how many went.
    pub async fn a2a_queue_prune(&self, before: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM a2a_queue WHERE status IN ('delivered', 'failed') AND updated_at < $1",
        )
        .bind(before)
        .execute(&self.writer)
        .await?
        .rows_affected())
    }
}
