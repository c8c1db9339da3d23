//! Provision jobs: written with the workspace they start; claimed by the provisioner
//! (a later part) with leases.

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
