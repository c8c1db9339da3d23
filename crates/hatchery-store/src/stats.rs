//! What `/metrics` reads off the database at each scrape: workspaces by status, the
//! provision queue, and the stalest heartbeat.

use hatchery_core::WorkspaceStatus;

use crate::{Store, StoreError};

/// A scrape's view of the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `(status, external, count)` of the workspaces not removed.
    pub workspaces: Vec<(WorkspaceStatus, bool, i64)>,
    /// Provision jobs waiting to be claimed.
    pub jobs_pending: i64,
    /// When the oldest of them was queued (microseconds since the epoch).
    pub oldest_pending_job: Option<i64>,
    /// The oldest last heartbeat of an `online` or `degraded` workspace.
    pub stalest_heartbeat: Option<i64>,
}

impl Store {
    /// Read [`Stats`], from the reader pool (a scrape never waits on the writer).
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        let workspaces: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT status, external, COUNT(*) FROM workspaces WHERE status <> $1 \
             GROUP BY status, external ORDER BY status, external",
        )
        .bind(WorkspaceStatus::Removed.as_str())
        .fetch_all(&self.reader)
        .await?;
        let (jobs_pending, oldest_pending_job): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM provision_jobs WHERE state = 'pending'",
        )
        .fetch_one(&self.reader)
        .await?;
        let stalest_heartbeat: Option<i64> =
            sqlx::query_scalar("SELECT MIN(last_seen_at) FROM workspaces WHERE status IN ($1, $2)")
                .bind(WorkspaceStatus::Online.as_str())
                .bind(WorkspaceStatus::Degraded.as_str())
                .fetch_one(&self.reader)
                .await?;
        let workspaces = workspaces
            .into_iter()
            .map(|(status, external, count)| Ok((status.parse()?, external != 0, count)))
            .collect::<Result<_, StoreError>>()?;
        Ok(Stats {
            workspaces,
            jobs_pending,
            oldest_pending_job,
            stalest_heartbeat,
        })
    }
}
