//! Delegations: a task one workspace hands to a peer. Those the control plane carries are
//! claimed for delivery with a lease, as provision jobs are: a runner that dies mid-call
//! leaves its delegation `working` with a lease that runs out, and another claim takes it
//! again. Every status change is a compare-and-set on the status it changes from, with
//! its event in the same transaction.

use hatchery_core::DelegationStatus;

use crate::events::{NewEvent, insert_event};
use crate::{IntFlag, Store, StoreError, bool_column};

/// The columns of a [`DelegationRow`].
const COLUMNS: &str = "row_id, workspace_id, delegation_id, target_id, task, self_managed, \
    status, idempotency_key, result, error, attempts, created_at, updated_at";

/// What makes a delegation the control plane carries due for a claim at `now` (a
/// placeholder): pending and past its back-off, or working under a lease that ran out (its
/// runner died).
fn due(now: &str) -> String {
    format!(
        "self_managed = 0 AND ((status = 'pending' AND (not_before IS NULL \
         OR not_before <= {now})) OR (status = 'working' AND lease_until < {now}))"
    )
}

/// A stored delegation.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DelegationRow {
    pub row_id: String,
    /// The delegating workspace.
    pub workspace_id: String,
    pub delegation_id: String,
    pub target_id: String,
    pub task: String,
    /// Recorded by the delegating agent, which delivers it and reports its end; otherwise
    /// the control plane delivers it.
    #[sqlx(try_from = "IntFlag")]
    pub self_managed: bool,
    #[sqlx(try_from = "String")]
    pub status: DelegationStatus,
    pub idempotency_key: Option<String>,
    /// The target's answer, once completed.
    pub result: Option<String>,
    /// Why it failed, or (pending) why it waits.
    pub error: Option<String>,
    /// How many times its delivery was claimed.
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A delegation to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelegation {
    /// The delegating workspace.
    pub workspace_id: String,
    /// Its id: a fresh UUID, or the agent's own task id.
    pub delegation_id: String,
    /// The workspace that gets the task.
    pub target_id: String,
    /// The task, as the target's agent reads it.
    pub task: String,
    /// Recorded by an agent that delivers it itself: stored `working`, never claimed.
    /// Otherwise stored `pending`, for the control plane to deliver.
    pub self_managed: bool,
    /// The caller's key for a retried request.
    pub idempotency_key: Option<String>,
}

/// What an insert came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DelegationInsert {
    /// Stored, with its event.
    Created(DelegationRow),
    /// Nothing stored: a delegation that is not failed already holds the idempotency key,
    /// or one of the workspace already has the delegation id. This is it.
    Existing(DelegationRow),
}

/// How a delegation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Answered, with the answer's text.
    Completed {
        /// The text kept.
        result: String,
    },
    /// Failed, with the reason in words.
    Failed {
        /// The reason.
        error: String,
    },
}

impl Ending {
    /// The status it leaves the delegation in.
    #[must_use]
    pub fn status(&self) -> DelegationStatus {
        match self {
            Self::Completed { .. } => DelegationStatus::Completed,
            Self::Failed { .. } => DelegationStatus::Failed,
        }
    }

    fn columns(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Self::Completed { result } => (Some(result), None),
            Self::Failed { error } => (None, Some(error)),
        }
    }
}

/// What an agent's report of its own delegation's end came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegationReport {
    /// Applied, with its event.
    Updated,
    /// The workspace has no delegation by that id.
    NotFound,
    /// The control plane carries that delegation: its end is not the agent's to say.
    NotSelfManaged,
    /// It had already ended, in this status.
    Finished(DelegationStatus),
}

impl Store {
    /// Store a delegation and its event (`DELEGATION_SENT`), unless one with its
    /// idempotency key or id exists. A failed delegation holding the key gives it up
    /// first (its row stays, as history), so a retry after a failure delegates again.
    #[tracing::instrument(skip(self, delegation, event), fields(workspace_id = %delegation.workspace_id))]
    pub async fn delegation_insert(
        &self,
        delegation: &NewDelegation,
        event: &NewEvent,
    ) -> Result<DelegationInsert, StoreError> {
        let now = self.now();
        let mut tx = self.begin_events().await?;
        if let Some(key) = &delegation.idempotency_key {
            sqlx::query(
                "UPDATE delegations SET idempotency_key = NULL, updated_at = $3, \
                 version = version + 1 \
                 WHERE workspace_id = $1 AND idempotency_key = $2 AND status = 'failed'",
            )
            .bind(&delegation.workspace_id)
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let status = if delegation.self_managed {
            DelegationStatus::Working
        } else {
            DelegationStatus::Pending
        };
        // Either unique constraint (the id, the key) turns the insert into nothing; the
        // holder is read back below. On Postgres a concurrent insert of the same key
        // waits here for the other transaction, then finds its row.
        let sql = format!(
            "INSERT INTO delegations (row_id, workspace_id, delegation_id, target_id, task, \
             self_managed, status, idempotency_key, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
             ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
        );
        let created: Option<DelegationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(uuid::Uuid::new_v4().hyphenated().to_string())
            .bind(&delegation.workspace_id)
            .bind(&delegation.delegation_id)
            .bind(&delegation.target_id)
            .bind(&delegation.task)
            .bind(bool_column(delegation.self_managed))
            .bind(status.as_str())
            .bind(&delegation.idempotency_key)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = created {
            insert_event(&mut tx, event, now).await?;
            tx.commit().await?;
            return Ok(DelegationInsert::Created(row));
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM delegations WHERE workspace_id = $1 \
             AND (idempotency_key = $2 OR delegation_id = $3) \
             ORDER BY CASE WHEN idempotency_key = $2 THEN 0 ELSE 1 END LIMIT 1"
        );
        let existing: Option<DelegationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&delegation.workspace_id)
            .bind(&delegation.idempotency_key)
            .bind(&delegation.delegation_id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        existing
            .map(DelegationInsert::Existing)
            .ok_or_else(|| StoreError::Corrupt {
                table: "delegations",
                detail: format!(
                    "an insert of delegation {} conflicted with no row",
                    delegation.delegation_id
                ),
            })
    }

    /// The delegation `delegation_id` of `workspace_id`.
    pub async fn delegation_get(
        &self,
        workspace_id: &str,
        delegation_id: &str,
    ) -> Result<Option<DelegationRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM delegations WHERE workspace_id = $1 AND delegation_id = $2"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(workspace_id)
            .bind(delegation_id)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// The delegation of `workspace_id` that holds idempotency key `key`, if any.
    pub async fn delegation_by_key(
        &self,
        workspace_id: &str,
        key: &str,
    ) -> Result<Option<DelegationRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM delegations WHERE workspace_id = $1 AND idempotency_key = $2"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(workspace_id)
            .bind(key)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// The newest `limit` delegations of `workspace_id`, newest first.
    pub async fn delegation_list(
        &self,
        workspace_id: &str,
        limit: i64,
    ) -> Result<Vec<DelegationRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM delegations WHERE workspace_id = $1 \
             ORDER BY created_at DESC, row_id DESC LIMIT $2"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(workspace_id)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?)
    }

    /// Claim the oldest delegation due for delivery for `owner` until `lease_until`: it
    /// goes `working` (what it waited for is forgotten), with the event `started` makes of
    /// it (if any) in the same transaction. One runner gets each: SQLite has one writer; Postgres skips rows
    /// another claim holds. Nothing due costs one read.
    pub async fn delegation_claim(
        &self,
        owner: &str,
        lease_until: i64,
        started: impl FnOnce(&DelegationRow) -> Option<NewEvent>,
    ) -> Result<Option<DelegationRow>, StoreError> {
        let now = self.now();
        let any_due: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM delegations WHERE {} LIMIT 1",
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
            "UPDATE delegations SET status = 'working', lease_owner = $1, lease_until = $2, \
             attempts = attempts + 1, not_before = NULL, error = NULL, updated_at = $3, \
             version = version + 1 \
             WHERE row_id = (SELECT row_id FROM delegations WHERE {} \
                 ORDER BY created_at, row_id LIMIT 1{lock}) \
             RETURNING {COLUMNS}",
            due("$3")
        );
        let mut tx = self.begin_events().await?;
        let claimed: Option<DelegationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(event) = claimed.as_ref().and_then(started) {
            insert_event(&mut tx, &event, now).await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Extend `owner`'s lease on a delegation it is delivering; `false` when it no longer
    /// holds it (the lease ran out and another runner took it).
    pub async fn delegation_renew(
        &self,
        row_id: &str,
        owner: &str,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE delegations SET lease_until = $3 \
             WHERE row_id = $1 AND lease_owner = $2 AND status = 'working'",
        )
        .bind(row_id)
        .bind(owner)
        .bind(lease_until)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    /// End a delegation `owner` is delivering, with its event; `false` (nothing written)
    /// when it no longer holds it.
    pub async fn delegation_finish(
        &self,
        row_id: &str,
        owner: &str,
        ending: &Ending,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let (result, error) = ending.columns();
        let mut tx = self.begin_events().await?;
        let finished = sqlx::query(
            "UPDATE delegations SET status = $3, result = $4, error = $5, lease_owner = NULL, \
             lease_until = NULL, updated_at = $6, version = version + 1 \
             WHERE row_id = $1 AND lease_owner = $2 AND status = 'working'",
        )
        .bind(row_id)
        .bind(owner)
        .bind(ending.status().as_str())
        .bind(result)
        .bind(error)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if finished == 1 {
            insert_event(&mut tx, event, now).await?;
        }
        tx.commit().await?;
        Ok(finished == 1)
    }

    /// Put a delegation `owner` is delivering back to `pending`, to be tried again after
    /// `not_before`, saying why it waits; `false` when it no longer holds it.
    pub async fn delegation_defer(
        &self,
        row_id: &str,
        owner: &str,
        not_before: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let deferred = sqlx::query(
            "UPDATE delegations SET status = 'pending', not_before = $3, error = $4, \
             lease_owner = NULL, lease_until = NULL, updated_at = $5, version = version + 1 \
             WHERE row_id = $1 AND lease_owner = $2 AND status = 'working'",
        )
        .bind(row_id)
        .bind(owner)
        .bind(not_before)
        .bind(reason)
        .bind(self.now())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(deferred == 1)
    }

    /// An agent's report of how a delegation it recorded ended, with its event: applied
    /// only to a self-managed delegation that has not ended.
    #[tracing::instrument(skip(self, ending, event))]
    pub async fn delegation_update(
        &self,
        workspace_id: &str,
        delegation_id: &str,
        ending: &Ending,
        event: &NewEvent,
    ) -> Result<DelegationReport, StoreError> {
        let now = self.now();
        let (result, error) = ending.columns();
        let mut tx = self.begin_events().await?;
        let updated = sqlx::query(
            "UPDATE delegations SET status = $3, result = $4, error = $5, updated_at = $6, \
             version = version + 1 \
             WHERE workspace_id = $1 AND delegation_id = $2 AND self_managed = 1 \
             AND status IN ('pending', 'working')",
        )
        .bind(workspace_id)
        .bind(delegation_id)
        .bind(ending.status().as_str())
        .bind(result)
        .bind(error)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let report = if updated == 1 {
            insert_event(&mut tx, event, now).await?;
            DelegationReport::Updated
        } else {
            let found: Option<(i64, String)> = sqlx::query_as(
                "SELECT self_managed, status FROM delegations \
                 WHERE workspace_id = $1 AND delegation_id = $2",
            )
            .bind(workspace_id)
            .bind(delegation_id)
            .fetch_optional(&mut *tx)
            .await?;
            match found {
                None => DelegationReport::NotFound,
                Some((0, _)) => DelegationReport::NotSelfManaged,
                Some((_, status)) => {
                    DelegationReport::Finished(status.parse().map_err(|e| StoreError::Corrupt {
                        table: "delegations",
                        detail: format!("{e}"),
                    })?)
                }
            }
        };
        tx.commit().await?;
        Ok(report)
    }

    /// Delete ended delegations last changed before `before` (retention); how many went.
    pub async fn delegation_prune(&self, before: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM delegations WHERE status IN ('completed', 'failed') AND updated_at < $1",
        )
        .bind(before)
        .execute(&self.writer)
        .await?
        .rows_affected())
    }
}
