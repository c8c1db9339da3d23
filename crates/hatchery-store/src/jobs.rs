//! Provision jobs: written with the workspace they start; claimed by the provisioner
//! (a later part) with leases.

use sqlx::{Any, Transaction};

use crate::tokens::{TokenKind, insert_token, revoke_kind};
use crate::{NewToken, Store, StoreError};

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

/// What a runner holds of a job it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobLease {
    /// Still its own to run.
    Held,
    /// A restart, pause or delete replaced it: its start must not leave an agent behind.
    Superseded,
    /// Gone to another runner (the lease ran out) or closed.
    Lost,
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
        let lock = match self.database {
            crate::Database::Sqlite => "",
            crate::Database::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE provision_jobs SET state = 'claimed', lease_owner = $1, lease_until = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE id = (SELECT id FROM provision_jobs \
                 WHERE ((state = 'pending' AND (lease_until IS NULL OR lease_until <= $3)) \
                    OR (state = 'claimed' AND lease_until < $3)) \
                   AND NOT EXISTS (SELECT 1 FROM provision_jobs s \
                       WHERE s.workspace_id = provision_jobs.workspace_id \
                       AND s.state = 'superseded' AND s.lease_until >= $3) \
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

    /// Extend `owner`'s lease on a job it still holds, superseded or not: a superseded
    /// job's start still runs, and its lease keeps the newer job waiting until it ends
    /// (unless the lease already ran out: the newer job may be running by now).
    pub async fn job_renew(
        &self,
        id: &str,
        owner: &str,
        lease_until: i64,
    ) -> Result<JobLease, StoreError> {
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE provision_jobs SET lease_until = $3 \
             WHERE id = $1 AND lease_owner = $2 \
             AND (state = 'claimed' OR (state = 'superseded' AND lease_until >= $4)) \
             RETURNING state",
        )
        .bind(id)
        .bind(owner)
        .bind(lease_until)
        .bind(self.now())
        .fetch_optional(&self.writer)
        .await?;
        Ok(match state.as_deref() {
            Some("claimed") => JobLease::Held,
            Some(_) => JobLease::Superseded,
            None => JobLease::Lost,
        })
    }

    /// Store a workspace's bootstrap token for the start of job `id`, replacing the ones
    /// not yet spent, only while `owner` still holds the job: a start that a restart,
    /// pause or delete superseded (or another runner took over) gets no credential, and
    /// says which. Under the event lock, as those moves are: a restart's revocation either
    /// comes after this token (and revokes it) or before (and this finds the job
    /// superseded).
    ///
    /// With `replica`, the start also records that this replica runs the agent from now
    /// on (see `agents_owned`).
    pub async fn job_bootstrap(
        &self,
        id: &str,
        owner: &str,
        token: &NewToken,
        replica: Option<&str>,
    ) -> Result<JobLease, StoreError> {
        let now = self.now();
        let mut tx = self.begin_events().await?;
        let state: Option<String> = sqlx::query_scalar(
            "SELECT state FROM provision_jobs WHERE id = $1 AND lease_owner = $2 \
             AND workspace_id = $3",
        )
        .bind(id)
        .bind(owner)
        .bind(&token.workspace_id)
        .fetch_optional(&mut *tx)
        .await?;
        match state.as_deref() {
            Some("claimed") => {}
            Some("superseded") => return Ok(JobLease::Superseded),
            _ => return Ok(JobLease::Lost),
        }
        revoke_kind(&mut tx, &token.workspace_id, TokenKind::Bootstrap, now).await?;
        insert_token(&mut tx, token, now).await?;
        if let Some(replica) = replica {
            crate::replicas::own(&mut tx, &token.workspace_id, replica).await?;
        }
        tx.commit().await?;
        Ok(JobLease::Held)
    }

    /// Let go of a superseded job whose start has ended (its agent stopped): the job
    /// that replaced it may run now.
    pub async fn job_release(&self, id: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE provision_jobs SET lease_until = NULL, updated_at = $3 \
             WHERE id = $1 AND lease_owner = $2 AND state = 'superseded'",
        )
        .bind(id)
        .bind(owner)
        .bind(self.now())
        .execute(&self.writer)
        .await?;
        Ok(())
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

/// Cancel a workspace's pending jobs and supersede its claimed ones (a newer job, or
/// none, replaces them). A superseded job's runner learns it from its lease: it gets no
/// bootstrap token, and stops whatever agent it had already started.
pub(crate) async fn cancel_pending(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE provision_jobs SET state = CASE state WHEN 'pending' THEN 'cancelled' \
         ELSE 'superseded' END, updated_at = $2 \
         WHERE workspace_id = $1 AND state IN ('pending', 'claimed')",
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
