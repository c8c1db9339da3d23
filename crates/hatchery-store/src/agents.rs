//! What agents report and what the control plane concludes from silence: registration,
//! heartbeat snapshots and status transitions, liveness expiry, the provisioning deadline,
//! and the lifecycle moves (pause, resume, restart). Every status change is a
//! compare-and-set on the status it was decided from, with its event in the same
//! transaction, so replicas sharing one database never double a transition.

use hatchery_core::lifecycle::{Decision, EventKind, Move, Refusal, Transition, WorkspaceStatus};
use sqlx::{Any, Transaction};

use crate::events::{NewEvent, commit_with_event, insert_event};
use crate::tokens::{NewToken, TokenKind, insert_token, live_count};
use crate::{IntFlag, Store, StoreError, bool_column};

/// A registration, decided by the caller.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    /// The workspace.
    pub id: &'a str,
    /// The URL the agent serves on, verbatim.
    pub url: &'a str,
    /// The agent card, JSON text.
    pub agent_card: &'a str,
    /// Stored if the workspace holds no live workspace token yet, or if `always_issue`.
    pub new_token: &'a NewToken,
    /// Store `new_token` even if the workspace holds live tokens.
    pub always_issue: bool,
    /// The bootstrap token the agent presented: consumed by this registration.
    pub bootstrap_token_id: Option<&'a str>,
}

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// Now `online`; `token_issued` when `new_token` was stored.
    Online {
        /// Whether the new token was stored (it is shown to the agent then, and only then).
        token_issued: bool,
        /// When it came from `provisioning`: how long that took, in microseconds.
        provisioned_in: Option<i64>,
    },
    /// No such workspace.
    NotFound,
    /// The workspace is `removed`.
    Removed,
    /// The workspace is in a status registration must not override (`paused`,
    /// `hibernated`).
    Refused(WorkspaceStatus),
    /// The bootstrap token presented was spent (or expired) meanwhile.
    BootstrapSpent,
}

/// The latest numbers an agent reported; no history is kept.
#[allow(
    missing_docs,
    reason = "fields mirror the heartbeat body of the platform API"
)]
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSnapshot {
    pub error_rate: f64,
    pub sample_error: String,
    pub active_tasks: i64,
    pub uptime_seconds: i64,
    pub current_task: String,
    /// `None`: leave the stored spend unchanged.
    pub monthly_spend: Option<i64>,
    pub runtime_state: String,
    /// `None`: the agent did not say.
    pub status_mgmt: Option<bool>,
    /// When the heartbeat arrived.
    pub seen_at: i64,
    /// The token that authenticated it, for `last_used_at`.
    pub token_id: Option<String>,
}

/// What the heartbeat rules read of a workspace.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LiveState {
    #[sqlx(try_from = "String")]
    pub status: WorkspaceStatus,
    pub current_task: String,
    #[sqlx(try_from = "IntFlag")]
    pub status_mgmt: bool,
}

/// One member of a subtree, as the lifecycle moves need it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct Member {
    id: String,
    name: String,
    tier: i64,
    runtime: String,
    #[sqlx(try_from = "String")]
    status: WorkspaceStatus,
}

/// What a lifecycle move (pause, resume, restart) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleOutcome<T> {
    /// Applied; with what it reports (the workspaces paused, how many resumed).
    Applied(T),
    /// No such workspace, or not in a status the move applies to.
    NotApplicable,
    /// An ancestor is paused: resume it first. Carries its name.
    AncestorPaused(String),
}

/// A workspace still `provisioning`, as the deadline sweep needs it.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Provisioning {
    pub id: String,
    pub runtime: String,
    pub provisioning_since: i64,
    /// The newest provision job's state and attempts, if there is a job.
    pub job_state: Option<String>,
    pub job_attempts: Option<i64>,
}

const SNAPSHOT_SET: &str = "last_error_rate = $2, last_sample_error = $3, active_tasks = $4, \
    uptime_seconds = $5, current_task = $6, monthly_spend = COALESCE($7, monthly_spend), \
    runtime_state = $8, status_mgmt = COALESCE($9, status_mgmt), last_seen_at = $10";

async fn write_snapshot(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    snapshot: &AgentSnapshot,
) -> Result<u64, StoreError> {
    // Never older over newer: a flush racing a transition keeps the newer beat.
    let sql = format!(
        "UPDATE workspaces SET {SNAPSHOT_SET} WHERE id = $1 AND status <> {removed} \
         AND (last_seen_at IS NULL OR last_seen_at <= $10)",
        removed = crate::quoted(WorkspaceStatus::Removed),
    );
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(snapshot.error_rate)
        .bind(&snapshot.sample_error)
        .bind(snapshot.active_tasks)
        .bind(snapshot.uptime_seconds)
        .bind(&snapshot.current_task)
        .bind(snapshot.monthly_spend)
        .bind(&snapshot.runtime_state)
        .bind(snapshot.status_mgmt.map(bool_column))
        .bind(snapshot.seen_at)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

/// Apply `transition` if the status is still the one it was decided from; `false` when
/// another writer got there first. A start (re)sets the provisioning clock; a failure
/// keeps its reason, any other status clears it.
async fn compare_and_set_status(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    transition: Transition,
    now: i64,
) -> Result<bool, StoreError> {
    let provisioning_since = (transition.to == WorkspaceStatus::Provisioning).then_some(now);
    let keeps_reason = transition.to == WorkspaceStatus::Failed;
    let changed = sqlx::query(
        "UPDATE workspaces SET status = $3, updated_at = $4, version = version + 1, \
         provisioning_since = COALESCE($5, provisioning_since), \
         failure_reason = CASE WHEN $6 = 1 THEN failure_reason ELSE NULL END \
         WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(transition.from.as_str())
    .bind(transition.to.as_str())
    .bind(now)
    .bind(provisioning_since)
    .bind(bool_column(keeps_reason))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// Apply what `mv` decides for `member`, with its event; the transition when it was
/// applied, `None` when the move changes nothing or lost a race.
async fn apply_move(
    tx: &mut Transaction<'_, Any>,
    member: &Member,
    mv: Move,
    payload: String,
    now: i64,
) -> Result<Option<Transition>, StoreError> {
    let Decision::Change(transition) = hatchery_core::decide(member.status, mv) else {
        return Ok(None);
    };
    if !compare_and_set_status(tx, &member.id, transition, now).await? {
        return Ok(None);
    }
    insert_event(
        tx,
        &NewEvent::about(transition.event, &member.id, payload),
        now,
    )
    .await?;
    Ok(Some(transition))
}

async fn subtree(tx: &mut Transaction<'_, Any>, id: &str) -> Result<Vec<Member>, StoreError> {
    Ok(sqlx::query_as(
        "WITH RECURSIVE tree (id, depth) AS ( \
             SELECT id, 0 FROM workspaces WHERE id = $1 \
             UNION ALL SELECT w.id, t.depth + 1 FROM workspaces w JOIN tree t ON w.parent_id = t.id \
             WHERE t.depth < 64) \
         SELECT w.id, w.name, w.tier, w.runtime, w.status FROM workspaces w \
         JOIN tree t ON w.id = t.id ORDER BY t.depth, w.created_at, w.id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?)
}

/// The nearest paused ancestor of `id`, by name.
async fn paused_ancestor(
    tx: &mut Transaction<'_, Any>,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let mut current = id.to_owned();
    // The parent chain is acyclic (updates check it); the cap guards a corrupt database.
    for _ in 0..64 {
        let parent: Option<Option<String>> =
            sqlx::query_scalar("SELECT parent_id FROM workspaces WHERE id = $1")
                .bind(&current)
                .fetch_optional(&mut **tx)
                .await?;
        let Some(Some(parent)) = parent else {
            return Ok(None);
        };
        let (name, status): (String, String) =
            sqlx::query_as("SELECT name, status FROM workspaces WHERE id = $1")
                .bind(&parent)
                .fetch_one(&mut **tx)
                .await?;
        if status.parse::<WorkspaceStatus>()? == WorkspaceStatus::Paused {
            return Ok(Some(name));
        }
        current = parent;
    }
    Ok(None)
}

/// Whether `mv` would change `member`'s status.
fn decides_a_change(member: &Member, mv: Move) -> bool {
    matches!(
        hatchery_core::decide(member.status, mv),
        Decision::Change(_)
    )
}

fn provisioning_payload(member: &Member) -> String {
    serde_json::json!({"name": member.name, "tier": member.tier, "runtime": member.runtime})
        .to_string()
}

impl Store {
    /// Register an agent: the workspace goes `online` with its URL and card, and a
    /// `WORKSPACE_ONLINE` event, in one transaction.
    pub async fn register(
        &self,
        registration: &Registration<'_>,
    ) -> Result<Registered, StoreError> {
        let now = self.now();
        let mut tx = self.begin_events().await?;
        if let Some(bootstrap) = registration.bootstrap_token_id {
            // Spent by this registration, once: a second one with it finds it revoked.
            let spent = sqlx::query(
                "UPDATE workspace_tokens SET revoked_at = $2, last_used_at = $2 \
                 WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(bootstrap)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if spent != 1 {
                return Ok(Registered::BootstrapSpent);
            }
        }
        let current: Option<(String, String, Option<i64>)> =
            sqlx::query_as("SELECT status, url, provisioning_since FROM workspaces WHERE id = $1")
                .bind(registration.id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((status, old_url, provisioning_since)) = current else {
            return Ok(Registered::NotFound);
        };
        let status: WorkspaceStatus = status.parse()?;
        let transition = match hatchery_core::decide(status, Move::Register) {
            Decision::Change(transition) => transition,
            Decision::Refused(Refusal::Removed) => return Ok(Registered::Removed),
            Decision::Refused(Refusal::NotFrom(held)) => return Ok(Registered::Refused(held)),
            Decision::Unchanged => return Ok(Registered::Refused(status)),
        };
        // Molecule keeps a loopback URL the platform set itself (a local agent's).
        let url = if old_url.starts_with("http://127.0.0.1") {
            old_url.as_str()
        } else {
            registration.url
        };
        sqlx::query(
            "UPDATE workspaces SET status = $5, url = $2, agent_card = $3, \
             last_seen_at = $4, failure_reason = NULL, runtime_state = '', updated_at = $4, \
             version = version + 1 WHERE id = $1",
        )
        .bind(registration.id)
        .bind(url)
        .bind(registration.agent_card)
        .bind(now)
        .bind(transition.to.as_str())
        .execute(&mut *tx)
        .await?;
        let payload = format!(
            "{{\"url\":{},\"agent_card\":{}}}",
            serde_json::Value::String(url.to_owned()),
            registration.agent_card
        );
        insert_event(
            &mut tx,
            &NewEvent::about(transition.event, registration.id, payload),
            now,
        )
        .await?;
        let token_issued = registration.always_issue
            || live_count(&mut tx, registration.id, TokenKind::Workspace, now).await? == 0;
        if token_issued {
            insert_token(&mut tx, registration.new_token, now).await?;
        }
        tx.commit().await?;
        let provisioned_in = provisioning_since
            .filter(|_| status == WorkspaceStatus::Provisioning)
            .map(|since| now.saturating_sub(since));
        Ok(Registered::Online {
            token_issued,
            provisioned_in,
        })
    }

    /// What the heartbeat rules need of a workspace; `None` if it does not exist.
    pub async fn live_state(&self, id: &str) -> Result<Option<LiveState>, StoreError> {
        Ok(
            sqlx::query_as(
                "SELECT status, current_task, status_mgmt FROM workspaces WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.reader)
            .await?,
        )
    }

    /// Write a heartbeat that makes `transition`, with its snapshot and event (whose
    /// payload is given), if the status is still the one it was decided from. `false` when
    /// it moved on meanwhile.
    pub async fn heartbeat_transition(
        &self,
        id: &str,
        transition: Transition,
        snapshot: &AgentSnapshot,
        payload: String,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tx = self.begin_events().await?;
        if !compare_and_set_status(&mut tx, id, transition, now).await? {
            return Ok(false);
        }
        write_snapshot(&mut tx, id, snapshot).await?;
        commit_with_event(tx, &NewEvent::about(transition.event, id, payload), now).await?;
        Ok(true)
    }

    /// Write many heartbeat snapshots that change no status, in one transaction.
    pub async fn heartbeat_flush(
        &self,
        snapshots: &[(String, AgentSnapshot)],
    ) -> Result<(), StoreError> {
        if snapshots.is_empty() {
            return Ok(());
        }
        // In id order: two replicas flushing overlapping sets lock rows in the same order.
        let mut ordered: Vec<&(String, AgentSnapshot)> = snapshots.iter().collect();
        ordered.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tx = self.writer.begin().await?;
        for (id, snapshot) in ordered {
            write_snapshot(&mut tx, id, snapshot).await?;
            if let Some(token_id) = &snapshot.token_id {
                sqlx::query("UPDATE workspace_tokens SET last_used_at = $2 WHERE id = $1")
                    .bind(token_id)
                    .bind(snapshot.seen_at)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Store a new agent card with its event; `None` if the workspace does not exist,
    /// `Some(false)` if it is removed.
    pub async fn update_card(
        &self,
        id: &str,
        agent_card: &str,
    ) -> Result<Option<bool>, StoreError> {
        let now = self.now();
        let mut tx = self.begin_events().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM workspaces WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(status) = status else {
            return Ok(None);
        };
        if status.parse::<WorkspaceStatus>()? == WorkspaceStatus::Removed {
            return Ok(Some(false));
        }
        sqlx::query("UPDATE workspaces SET agent_card = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(agent_card)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let payload = format!("{{\"agent_card\":{agent_card}}}");
        insert_event(
            &mut tx,
            &NewEvent::about(EventKind::AgentCardUpdated, id, payload),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    /// Mark `offline` every `online`/`degraded` workspace last seen before `cutoff`
    /// (`external_cutoff` for external ones), each with a `WORKSPACE_OFFLINE` event.
    /// Returns their ids. Safe on every replica at once.
    pub async fn expire_silent(
        &self,
        cutoff: i64,
        external_cutoff: i64,
    ) -> Result<Vec<String>, StoreError> {
        let silent: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT id, status, external FROM workspaces WHERE status IN ($3, $4) \
             AND last_seen_at < CASE WHEN external = 1 THEN $2 ELSE $1 END",
        )
        .bind(cutoff)
        .bind(external_cutoff)
        .bind(WorkspaceStatus::Online.as_str())
        .bind(WorkspaceStatus::Degraded.as_str())
        .fetch_all(&self.reader)
        .await?;
        let mut expired = Vec::new();
        if silent.is_empty() {
            return Ok(expired);
        }
        let now = self.now();
        let mut tx = self.begin_events().await?;
        for (id, status, external) in silent {
            let Decision::Change(transition) =
                hatchery_core::decide(status.parse()?, Move::Silence)
            else {
                continue;
            };
            let cutoff = if external == 1 {
                external_cutoff
            } else {
                cutoff
            };
            // Re-checked under the write: a heartbeat or another replica may have won.
            let changed = sqlx::query(
                "UPDATE workspaces SET status = $5, updated_at = $3, version = version + 1 \
                 WHERE id = $1 AND status = $2 AND last_seen_at < $4",
            )
            .bind(&id)
            .bind(transition.from.as_str())
            .bind(now)
            .bind(cutoff)
            .bind(transition.to.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                insert_event(
                    &mut tx,
                    &NewEvent::about(transition.event, &id, "{}".into()),
                    now,
                )
                .await?;
                expired.push(id);
            }
        }
        tx.commit().await?;
        Ok(expired)
    }

    /// Every workspace in `provisioning`, with its newest provision job.
    pub async fn provisioning(&self) -> Result<Vec<Provisioning>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT w.id, w.runtime, COALESCE(w.provisioning_since, w.updated_at) AS provisioning_since, \
             j.state AS job_state, j.attempts AS job_attempts FROM workspaces w \
             LEFT JOIN provision_jobs j ON j.id = ( \
                 SELECT id FROM provision_jobs WHERE workspace_id = w.id \
                 ORDER BY created_at DESC, id DESC LIMIT 1) \
             WHERE w.status = $1",
        )
        .bind(WorkspaceStatus::Provisioning.as_str())
        .fetch_all(&self.reader)
        .await?)
    }

    /// Fail a workspace still `provisioning` since `since`, with its reason and a
    /// `WORKSPACE_PROVISION_FAILED` event; `false` if it moved on meanwhile.
    pub async fn fail_provisioning(
        &self,
        id: &str,
        since: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let Decision::Change(transition) =
            hatchery_core::decide(WorkspaceStatus::Provisioning, Move::FailStart)
        else {
            return Ok(false);
        };
        let now = self.now();
        let mut tx = self.begin_events().await?;
        let changed = sqlx::query(
            "UPDATE workspaces SET status = $6, failure_reason = $3, updated_at = $4, \
             version = version + 1 WHERE id = $1 AND status = $5 \
             AND COALESCE(provisioning_since, updated_at) = $2",
        )
        .bind(id)
        .bind(since)
        .bind(reason)
        .bind(now)
        .bind(transition.from.as_str())
        .bind(transition.to.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        crate::jobs::cancel_pending(&mut tx, id, now).await?;
        let payload = serde_json::json!({"error": reason}).to_string();
        commit_with_event(tx, &NewEvent::about(transition.event, id, payload), now).await?;
        Ok(true)
    }

    /// Pause a workspace and every descendant that is not paused or removed: status
    /// `paused`, URL cleared, pending jobs cancelled, `WORKSPACE_PAUSED` each. Returns how
    /// many were paused.
    pub async fn pause(&self, id: &str) -> Result<LifecycleOutcome<Vec<String>>, StoreError> {
        let now = self.now();
        let mut tx = self.begin_events().await?;
        let tree = subtree(&mut tx, id).await?;
        if !tree
            .first()
            .is_some_and(|target| decides_a_change(target, Move::Pause))
        {
            return Ok(LifecycleOutcome::NotApplicable);
        }
        let mut paused = Vec::new();
        for member in &tree {
            let payload = serde_json::json!({"name": member.name}).to_string();
            if apply_move(&mut tx, member, Move::Pause, payload, now)
                .await?
                .is_none()
            {
                continue;
            }
            crate::tokens::revoke_all(&mut tx, &member.id, now).await?;
            sqlx::query("UPDATE workspaces SET url = '' WHERE id = $1")
                .bind(&member.id)
                .execute(&mut *tx)
                .await?;
            crate::jobs::cancel_pending(&mut tx, &member.id, now).await?;
            paused.push(member.id.clone());
        }
        tx.commit().await?;
        Ok(LifecycleOutcome::Applied(paused))
    }

    /// Resume a paused workspace and its paused descendants: each goes `provisioning` with
    /// a start job and `WORKSPACE_PROVISIONING`. Refused while an ancestor is paused.
    pub async fn resume(&self, id: &str) -> Result<LifecycleOutcome<usize>, StoreError> {
        let now = self.now();
        let mut tx = self.begin_events().await?;
        let tree = subtree(&mut tx, id).await?;
        if !tree
            .first()
            .is_some_and(|target| decides_a_change(target, Move::Resume))
        {
            return Ok(LifecycleOutcome::NotApplicable);
        }
        if let Some(name) = paused_ancestor(&mut tx, id).await? {
            return Ok(LifecycleOutcome::AncestorPaused(name));
        }
        let mut resumed = 0;
        for member in &tree {
            let payload = provisioning_payload(member);
            if apply_move(&mut tx, member, Move::Resume, payload, now)
                .await?
                .is_none()
            {
                continue;
            }
            crate::jobs::queue_if_launched(&mut tx, &member.id, "start", now).await?;
            resumed += 1;
        }
        tx.commit().await?;
        Ok(LifecycleOutcome::Applied(resumed))
    }

    /// The name of the nearest paused ancestor of `id`, if any.
    pub async fn paused_ancestor(&self, id: &str) -> Result<Option<String>, StoreError> {
        let mut tx = self.reader.begin().await?;
        let found = paused_ancestor(&mut tx, id).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Restart a workspace: `provisioning`, URL cleared, a restart job and
    /// `WORKSPACE_PROVISIONING`. Refused while an ancestor is paused.
    pub async fn restart(&self, id: &str) -> Result<LifecycleOutcome<()>, StoreError> {
        let now = self.now();
        let mut tx = self.begin_events().await?;
        let member: Option<Member> =
            sqlx::query_as("SELECT id, name, tier, runtime, status FROM workspaces WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((member, transition)) =
            member.and_then(|m| match hatchery_core::decide(m.status, Move::Restart) {
                Decision::Change(transition) => Some((m, transition)),
                Decision::Unchanged | Decision::Refused(_) => None,
            })
        else {
            return Ok(LifecycleOutcome::NotApplicable);
        };
        if let Some(name) = paused_ancestor(&mut tx, id).await? {
            return Ok(LifecycleOutcome::AncestorPaused(name));
        }
        sqlx::query(
            "UPDATE workspaces SET status = $3, url = '', provisioning_since = $2, \
             failure_reason = NULL, updated_at = $2, version = version + 1 WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .bind(transition.to.as_str())
        .execute(&mut *tx)
        .await?;
        // The old agent's tokens die with it: the new one registers with a bootstrap token.
        crate::tokens::revoke_all(&mut tx, id, now).await?;
        crate::jobs::queue_if_launched(&mut tx, id, "restart", now).await?;
        let event = NewEvent::about(transition.event, id, provisioning_payload(&member));
        commit_with_event(tx, &event, now).await?;
        Ok(LifecycleOutcome::Applied(()))
    }
}

impl Store {
    /// Workspaces whose agent this control plane launched and that should be running, but
    /// have no job in flight: after a restart of the control plane (whose sandboxes died
    /// with it) each needs a new start.
    ///
    /// With `owner` (a replica that records which agents it runs), only those it ran, those
    /// nobody owns, and those whose owner is no live replica: another live replica's
    /// agents are not this replica's to start again.
    pub async fn launched_without_job(
        &self,
        owner: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mine = if owner.is_some() {
            format!(" AND {}", crate::replicas::RESTARTABLE_BY)
        } else {
            String::new()
        };
        let wanting = crate::status_list(WorkspaceStatus::wants_agent);
        let sql = format!(
            "SELECT w.id FROM workspaces w \
             WHERE w.status IN ({wanting}) \
             AND w.external = 0{mine} \
             AND EXISTS (SELECT 1 FROM provision_jobs j WHERE j.workspace_id = w.id) \
             AND NOT EXISTS (SELECT 1 FROM provision_jobs j WHERE j.workspace_id = w.id \
                             AND j.state IN ('pending', 'claimed')) \
             ORDER BY w.created_at, w.id"
        );
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
        if let Some(owner) = owner {
            query = query.bind(owner).bind(self.now());
        }
        Ok(query.fetch_all(&self.reader).await?)
    }

    /// Start a workspace's agent again after the control plane lost it: `provisioning`
    /// with a new start job, its old tokens revoked, `WORKSPACE_PROVISIONING` saying why.
    /// `false` if its status moved on meanwhile.
    pub async fn relaunch(&self, id: &str, reason: &str) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tx = self.begin_events().await?;
        let relaunched = relaunch_in(&mut tx, id, reason, now).await?;
        if relaunched {
            tx.commit().await?;
        }
        Ok(relaunched)
    }
}

/// [`Store::relaunch`] inside a transaction (one that holds the event lock).
pub(crate) async fn relaunch_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
    reason: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let member: Option<Member> =
        sqlx::query_as("SELECT id, name, tier, runtime, status FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((member, transition)) =
        member.and_then(|m| match hatchery_core::decide(m.status, Move::Relaunch) {
            Decision::Change(transition) => Some((m, transition)),
            Decision::Unchanged | Decision::Refused(_) => None,
        })
    else {
        return Ok(false);
    };
    sqlx::query(
        "UPDATE workspaces SET status = $3, url = '', provisioning_since = $2, \
         updated_at = $2, version = version + 1 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(transition.to.as_str())
    .execute(&mut **tx)
    .await?;
    crate::tokens::revoke_all(tx, id, now).await?;
    crate::jobs::queue(tx, id, "start", now).await?;
    let payload = serde_json::json!({
        "name": member.name, "tier": member.tier, "runtime": member.runtime, "reason": reason,
    })
    .to_string();
    insert_event(tx, &NewEvent::about(transition.event, id, payload), now).await?;
    Ok(true)
}
