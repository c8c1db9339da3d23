//! Which control-plane replica runs each agent. A replica renews one lease of its own while
//! it lives (one row, however many agents it runs); each agent's workspace names the
//! replica that started it. Only backends whose agents die with their control plane
//! (local sandboxes) record an owner: when a replica dies, its lease runs out and another
//! replica starts its agents again; an agent whose workspace moved to another owner (a
//! restart that replica ran) is stopped by the replica that still runs it.

use std::sync::LazyLock;

use hatchery_core::WorkspaceStatus;

use crate::{Store, StoreError};

/// Statuses whose workspaces should have an agent running, as a SQL list.
static WANTED: LazyLock<String> =
    LazyLock::new(|| format!("({})", crate::status_list(WorkspaceStatus::wants_agent)));
/// The owner of workspace `w` is not a live replica: none, or its lease ran out (`$1` is
/// now).
const OWNER_GONE: &str = "NOT EXISTS (SELECT 1 FROM replicas r \
     WHERE r.id = w.agent_owner AND r.lease_until >= $1)";

impl Store {
    /// Renew replica `id`'s lease, running `backend`, until `until` (taken, the first
    /// time).
    pub async fn replica_renew(
        &self,
        id: &str,
        backend: &str,
        until: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO replicas (id, backend, lease_until) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET backend = excluded.backend, \
             lease_until = excluded.lease_until",
        )
        .bind(id)
        .bind(backend)
        .bind(until)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Another live replica (not `id`) running `backend`, if there is one.
    pub async fn replica_other_live(
        &self,
        id: &str,
        backend: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM replicas WHERE id <> $1 AND backend = $2 AND lease_until >= $3 \
             ORDER BY id LIMIT 1",
        )
        .bind(id)
        .bind(backend)
        .bind(self.now())
        .fetch_optional(&self.reader)
        .await?)
    }

    /// The workspaces whose agent `owner` started and that should still run one (not
    /// paused, removed or failed since).
    pub async fn agents_owned(&self, owner: &str) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT id FROM workspaces WHERE agent_owner = $1 AND status IN {wanted}",
            wanted = &*WANTED
        );
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .fetch_all(&self.reader)
            .await?)
    }

    /// Workspaces that should run an agent, whose owner is no live replica (it died) and
    /// that have no start on the way: theirs to adopt.
    pub async fn agents_orphaned(&self) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT w.id FROM workspaces w \
             WHERE w.agent_owner IS NOT NULL AND {OWNER_GONE} \
             AND w.status IN {wanted} AND w.external = 0 \
             AND NOT EXISTS (SELECT 1 FROM provision_jobs j WHERE j.workspace_id = w.id \
                             AND j.state IN ('pending', 'claimed')) \
             ORDER BY w.created_at, w.id",
            wanted = &*WANTED
        );
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(self.now())
            .fetch_all(&self.reader)
            .await?)
    }

    /// Start an orphaned agent again: like [`Store::relaunch`], but only while its owner
    /// is still no live replica (so of several replicas that saw it, one adopts it), the
    /// dead owner let go of. `false` if it was not (any more) an orphan.
    pub async fn agent_adopt(&self, id: &str, reason: &str) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tx = self.begin_events().await?;
        let sql = format!(
            "UPDATE workspaces SET agent_owner = NULL \
             WHERE id = $2 AND agent_owner IS NOT NULL AND {} \
             AND status IN {wanted} AND external = 0",
            OWNER_GONE.replace("w.agent_owner", "workspaces.agent_owner"),
            wanted = &*WANTED
        );
        let released = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if released == 0 {
            return Ok(false);
        }
        let relaunched = crate::agents::relaunch_in(&mut tx, id, reason, now).await?;
        if relaunched {
            tx.commit().await?;
        }
        Ok(relaunched)
    }
}

/// Record, inside a start's transaction, that replica `owner` runs the workspace's agent.
pub(crate) async fn own(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
    owner: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE workspaces SET agent_owner = $2 WHERE id = $1")
        .bind(id)
        .bind(owner)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The condition, for `launched_without_job`, that workspace `w`'s agent is `$1`'s to start
/// again (`$2` is now): it started it, nobody did, or its owner is no live replica.
pub(crate) const RESTARTABLE_BY: &str = "(w.agent_owner IS NULL OR w.agent_owner = $1 \
     OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = w.agent_owner AND r.lease_until >= $2))";
