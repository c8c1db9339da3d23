//! Provision jobs: written with the workspace they start; claimed by the provisioner
//! (a later part) with leases.

use sqlx::{Any, Transaction};

use crate::{Store, StoreError};

/// A stored provision job.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub workspace_id: String,
    /// `start`, …
    pub kind: String,
    /// `pending`, `cancelled`, …
    pub state: String,
    pub attempts: i64,
    pub created_at: i64,
}

impl Store {
    /// Every job, oldest first.
    pub async fn job_list(&self) -> Result<Vec<JobRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, workspace_id, kind, state, attempts, created_at FROM provision_jobs \
             ORDER BY created_at, id",
        )
        .fetch_all(&self.reader)
        .await?)
    }
}

/// A job claimed by a runner, with its lease.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: String,
    pub workspace_id: String,
    pub kind: String,
    /// How many times it has been claimed, this time included.
    pub attempts: i64,
}

impl Store {
    /// Claim the oldest runnable job for `owner` until `lease_until`: a pending one whose
    /// back-off has passed, or a claimed one whose lease ran out (its runner died). One
    /// runner gets each: SQLite has one writer; Postgres skips rows another claim holds.
    pub async fn job_claim(
        &self,
        owner: &str,
        lease_until: i64,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        let lock = match self.backend {
            crate::Backend::Sqlite => "",
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE provision_jobs SET state = 'claimed', lease_owner = $1, lease_until = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE id = (SELECT id FROM provision_jobs \
                 WHERE (state = 'pending' AND (lease_until IS NULL OR lease_until <= $3)) \
                    OR (state = 'claimed' AND lease_until < $3) \
                 ORDER BY created_at, id LIMIT 1{lock}) \
             RETURNING id, workspace_id, kind, attempts"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(lease_until)
            .bind(self.now())
            .fetch_optional(&self.writer)
            .await?)
    }

    /// Extend `owner`'s lease on a job it still holds; `false` if it lost it.
    pub async fn job_renew(
        &self,
        id: &str,
        owner: &str,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE provision_jobs SET lease_until = $3 \
             WHERE id = $1 AND lease_owner = $2 AND state = 'claimed'",
        )
        .bind(id)
        .bind(owner)
        .bind(lease_until)
        .execute(&self.writer)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Close a claimed job: `done`, `failed` or `cancelled`. Only its owner may.
    pub async fn job_finish(&self, id: &str, owner: &str, state: &str) -> Result<bool, StoreError> {
        let finished = sqlx::query(
            "UPDATE provision_jobs SET state = $3, lease_until = NULL, updated_at = $4 \
             WHERE id = $1 AND lease_owner = $2 AND state = 'claimed'",
        )
        .bind(id)
        .bind(owner)
        .bind(state)
        .bind(self.now())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(finished == 1)
    }

    /// Put a claimed job back, to run again after `not_before` (a transient failure).
    pub async fn job_retry(
        &self,
        id: &str,
        owner: &str,
        not_before: i64,
    ) -> Result<bool, StoreError> {
        let retried = sqlx::query(
            "UPDATE provision_jobs SET state = 'pending', lease_owner = NULL, lease_until = $3, \
             updated_at = $4 WHERE id = $1 AND lease_owner = $2 AND state = 'claimed'",
        )
        .bind(id)
        .bind(owner)
        .bind(not_before)
        .bind(self.now())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(retried == 1)
    }
}

/// Cancel a workspace's pending jobs (a newer one, or none, replaces them).
pub(crate) async fn cancel_pending(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE provision_jobs SET state = 'cancelled', updated_at = $2 \
         WHERE workspace_id = $1 AND state = 'pending'",
    )
    .bind(workspace_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Queue a job of `kind` for a workspace, superseding its pending ones.
pub(crate) async fn queue(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
    kind: &str,
    now: i64,
) -> Result<(), StoreError> {
    cancel_pending(tx, workspace_id, now).await?;
    sqlx::query(
        "INSERT INTO provision_jobs (id, workspace_id, kind, state, created_at, updated_at) \
         VALUES ($1, $2, $3, 'pending', $4, $4)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(workspace_id)
    .bind(kind)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Queue a job of `kind` only for a workspace hatchery launches: one that has had a job
/// before. A workspace created without a runtime (or external) waits for its agent to
/// register by itself, after a restart or a resume as after its create.
pub(crate) async fn queue_if_launched(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
    kind: &str,
    now: i64,
) -> Result<(), StoreError> {
    let launched: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM provision_jobs WHERE workspace_id = $1 LIMIT 1")
            .bind(workspace_id)
            .fetch_optional(&mut **tx)
            .await?;
    if launched.is_some() {
        queue(tx, workspace_id, kind, now).await?;
    }
    Ok(())
}
