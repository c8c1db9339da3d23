//! Workspace rows: the create transaction (row, generated files, secrets, events and the
//! provision job together or not at all), reads, compare-and-swap updates, cascading removal.

use hatchery_core::lifecycle::{Decision, Move, WorkspaceStatus};
use sqlx::{Any, Transaction};

use crate::events::{NewEvent, insert_event};
use crate::secrets::{SealedSecret, upsert_secret};
use crate::{IntFlag, Store, StoreError, bool_column};

/// Columns of `workspaces`, in the order `WorkspaceRow` reads them.
const COLUMNS: &str = "id, name, role, tier, status, url, parent_id, agent_card, active_tasks, \
    max_concurrent_tasks, last_error_rate, last_sample_error, uptime_seconds, current_task, \
    runtime, model, workspace_dir, workspace_access, x, y, collapsed, external, budget_limit, \
    monthly_spend, provider, provider_source, llm_billing_mode, registry_hash, derivation, \
    last_outbound_at, created_at, updated_at, version, last_seen_at, provisioning_since, \
    failure_reason, runtime_state, status_mgmt";

/// A workspace as stored.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WorkspaceRow {
    pub id: String,
    pub name: String,
    pub role: Option<String>,
    pub tier: i64,
    #[sqlx(try_from = "String")]
    pub status: WorkspaceStatus,
    pub url: String,
    pub parent_id: Option<String>,
    /// JSON text.
    pub agent_card: Option<String>,
    pub active_tasks: i64,
    pub max_concurrent_tasks: i64,
    pub last_error_rate: f64,
    pub last_sample_error: String,
    pub uptime_seconds: i64,
    pub current_task: String,
    pub runtime: String,
    pub model: String,
    pub workspace_dir: Option<String>,
    pub workspace_access: String,
    pub x: f64,
    pub y: f64,
    #[sqlx(try_from = "IntFlag")]
    pub collapsed: bool,
    #[sqlx(try_from = "IntFlag")]
    pub external: bool,
    pub budget_limit: Option<i64>,
    pub monthly_spend: i64,
    pub provider: Option<String>,
    pub provider_source: String,
    pub llm_billing_mode: Option<String>,
    pub registry_hash: String,
    /// The derivation's explain trace, JSON text.
    pub derivation: String,
    pub last_outbound_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Bumped by every update; updates compare it.
    pub version: i64,
    /// The last register or heartbeat (liveness).
    pub last_seen_at: Option<i64>,
    /// When the workspace last entered `provisioning` (the provision deadline).
    pub provisioning_since: Option<i64>,
    /// Why the workspace is `failed`.
    pub failure_reason: Option<String>,
    /// `""` or `wedged`, as the agent last reported.
    pub runtime_state: String,
    /// The agent manages its own status (error-rate rules skipped).
    #[sqlx(try_from = "IntFlag")]
    pub status_mgmt: bool,
}

/// A workspace as a peer listing weighs it: enough to order, filter and page peers
/// without reading their agent cards.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Relation {
    pub id: String,
    pub name: String,
    pub role: Option<String>,
    pub parent_id: Option<String>,
    pub created_at: i64,
    /// Bytes of its URL and agent card.
    pub size: i64,
}

/// A workspace to insert.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone)]
pub struct NewWorkspace {
    pub id: String,
    pub name: String,
    pub role: Option<String>,
    pub tier: i64,
    pub status: WorkspaceStatus,
    pub url: String,
    pub parent_id: Option<String>,
    pub max_concurrent_tasks: i64,
    pub runtime: String,
    pub model: String,
    pub workspace_dir: Option<String>,
    pub workspace_access: &'static str,
    pub x: f64,
    pub y: f64,
    pub external: bool,
    pub budget_limit: Option<i64>,
    pub provider: Option<String>,
    pub provider_source: &'static str,
    pub llm_billing_mode: Option<&'static str>,
    pub registry_hash: String,
    pub derivation: String,
}

/// What an org import does about earlier imports of the same org that are still live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlierImports {
    /// Refuse the import (nothing written).
    Refuse,
    /// Remove them, in the import's transaction.
    Replace,
    /// Leave them: an explicit second copy.
    Duplicate,
}

/// How an org import ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Written; `removed` are the workspaces of replaced earlier imports.
    Imported {
        /// Workspaces removed by a replace.
        removed: Vec<String>,
    },
    /// Refused: the org's earlier import, by its live roots.
    AlreadyImported(Vec<String>),
}

/// One workspace of an org import, with everything written beside it.
#[derive(Debug)]
pub struct ImportedWorkspace {
    /// Its row (`provisioning`, `online` for an external one, or `failed`).
    pub workspace: NewWorkspace,
    /// Why it failed, for a `failed` one.
    pub failure_reason: Option<String>,
    /// Its generated files.
    pub files: Vec<WorkspaceFile>,
    /// Its events.
    pub events: Vec<NewEvent>,
    /// Whether a provision job starts its agent.
    pub provision: bool,
    /// An external agent's token.
    pub token: Option<crate::NewToken>,
}

/// One generated file of a workspace (`config.yaml`, …).
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkspaceFile {
    pub path: String,
    pub content: String,
}

/// The new values of an update; the caller read the row and decided them.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspacePatch {
    pub name: String,
    pub role: Option<String>,
    pub tier: i64,
    pub parent_id: Option<String>,
    pub collapsed: bool,
    pub runtime: String,
    pub workspace_dir: Option<String>,
    pub x: f64,
    pub y: f64,
}

/// A new provider decision and the config files it generated, written with an update
/// (a runtime change re-derives the provider: the old one may not fit the new runtime).
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconfiguration {
    pub provider: Option<String>,
    pub provider_source: &'static str,
    pub llm_billing_mode: Option<&'static str>,
    pub registry_hash: String,
    pub derivation: String,
    pub files: Vec<WorkspaceFile>,
}

/// What a removal did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovedWorkspaces {
    /// Descendants newly marked removed (the target not counted).
    pub descendants: Vec<String>,
    /// Whether the target itself was live before.
    pub target_was_live: bool,
}

/// What an update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Written.
    Updated,
    /// The row moved on (or went) since it was read: nothing written; read it again.
    Stale,
    /// The new parent is the workspace itself or one of its descendants, as the tree stands
    /// inside the transaction (a concurrent move may have made it one): nothing written.
    WouldCycle,
    /// The new parent is not live, or the tree under it would be deeper than allowed.
    ParentRefused,
}

/// What a create did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Stored, with everything that goes with it.
    Created,
    /// Nothing stored: the parent does not exist or is removed (checked inside the
    /// transaction).
    ParentNotLive,
}

impl Store {
    /// Insert a workspace with its generated files, its secrets, its events and (when
    /// `provision` is set) a pending provision job, in one transaction.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace.id))]
    pub async fn workspace_create(
        &self,
        workspace: &NewWorkspace,
        files: &[WorkspaceFile],
        secrets: &[SealedSecret],
        events: &[NewEvent],
        provision: bool,
        token: Option<&crate::NewToken>,
    ) -> Result<CreateOutcome, StoreError> {
        let mut tx = self.begin_events().await?;
        if let Some(parent) = &workspace.parent_id {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM workspaces WHERE id = $1")
                    .bind(parent)
                    .fetch_optional(&mut *tx)
                    .await?;
            if !is_live(status)? {
                return Ok(CreateOutcome::ParentNotLive);
            }
        }
        let now = self.now();
        insert_row(&mut tx, workspace, now).await?;
        if let Some(token) = token {
            crate::tokens::insert_token(&mut tx, token, now).await?;
        }
        for file in files {
            insert_file(&mut tx, &workspace.id, file).await?;
        }
        for secret in secrets {
            upsert_secret(&mut tx, secret, now).await?;
        }
        for event in events {
            insert_event(&mut tx, event, now).await?;
        }
        if provision {
            crate::jobs::queue(&mut tx, &workspace.id, "start", now).await?;
        }
        tx.commit().await?;
        Ok(CreateOutcome::Created)
    }

    /// Create a whole tree of workspaces (an org or bundle import) in one transaction: a
    /// crash leaves all of it or none. With `org`, its roots are recorded as that org's
    /// import, and `earlier` says what to do about a live earlier one. Parents come before their children in `items`. A failed
    /// node is stored `failed` with its reason and gets no job. `after_each` is called
    /// with the count of rows written so far, inside the transaction (the crash tests use
    /// it to die midway).
    pub async fn workspace_import(
        &self,
        org: Option<&str>,
        earlier: EarlierImports,
        items: &[ImportedWorkspace],
        after_each: impl Fn(usize),
    ) -> Result<ImportOutcome, StoreError> {
        let mut tx = self.begin_events().await?;
        let now = self.now();
        // Read in the transaction: two imports of one org cannot both find none.
        let roots: Vec<String> = match org {
            Some(org) => {
                sqlx::query_scalar(
                    "SELECT o.root_id FROM org_imports o JOIN workspaces w ON w.id = o.root_id \
                     WHERE o.org = $1 AND w.status <> $2 ORDER BY o.created_at, o.root_id",
                )
                .bind(org)
                .bind(WorkspaceStatus::Removed.as_str())
                .fetch_all(&mut *tx)
                .await?
            }
            None => Vec::new(),
        };
        let mut removed = Vec::new();
        match earlier {
            EarlierImports::Refuse if !roots.is_empty() => {
                return Ok(ImportOutcome::AlreadyImported(roots));
            }
            EarlierImports::Replace => {
                for root in &roots {
                    let (_, gone) = remove_tree(&mut tx, root, now).await?;
                    if gone.target_was_live {
                        removed.push(root.clone());
                    }
                    removed.extend(gone.descendants);
                }
            }
            EarlierImports::Refuse | EarlierImports::Duplicate => {}
        }
        for (index, item) in items.iter().enumerate() {
            insert_row(&mut tx, &item.workspace, now).await?;
            if let Some(reason) = &item.failure_reason {
                sqlx::query("UPDATE workspaces SET failure_reason = $2 WHERE id = $1")
                    .bind(&item.workspace.id)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(token) = &item.token {
                crate::tokens::insert_token(&mut tx, token, now).await?;
            }
            for file in &item.files {
                insert_file(&mut tx, &item.workspace.id, file).await?;
            }
            for event in &item.events {
                insert_event(&mut tx, event, now).await?;
            }
            if item.provision {
                crate::jobs::queue(&mut tx, &item.workspace.id, "start", now).await?;
            }
            if let (None, Some(org)) = (&item.workspace.parent_id, org) {
                sqlx::query(
                    "INSERT INTO org_imports (root_id, org, created_at) VALUES ($1, $2, $3)",
                )
                .bind(&item.workspace.id)
                .bind(org)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            after_each(index + 1);
        }
        tx.commit().await?;
        Ok(ImportOutcome::Imported { removed })
    }

    /// One workspace, removed ones included.
    pub async fn workspace_get(&self, id: &str) -> Result<Option<WorkspaceRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM workspaces WHERE id = $1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// Every workspace that is not removed, oldest first.
    pub async fn workspace_list(&self) -> Result<Vec<WorkspaceRow>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM workspaces WHERE status <> $1 ORDER BY created_at, id");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(WorkspaceStatus::Removed.as_str())
            .fetch_all(&self.reader)
            .await?)
    }

    /// The live (not removed) children of a workspace, oldest first: `(id, name)`.
    pub async fn workspace_live_children(
        &self,
        id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, name FROM workspaces WHERE parent_id = $1 AND status <> $2 \
             ORDER BY created_at, id",
        )
        .bind(id)
        .bind(WorkspaceStatus::Removed.as_str())
        .fetch_all(&self.reader)
        .await?)
    }

    /// The live (not removed) direct relations of workspace `id`, whose parent is
    /// `parent_id`: the workspaces under the same parent (the other roots, for a root), its
    /// children and its parent, unordered, as a peer listing weighs them (no agent cards
    /// read).
    pub async fn workspace_relations(
        &self,
        id: &str,
        parent_id: Option<&str>,
    ) -> Result<Vec<Relation>, StoreError> {
        let siblings_or_parent = if parent_id.is_some() {
            "parent_id = $2 OR id = $2"
        } else {
            "parent_id IS NULL"
        };
        let sql = format!(
            "SELECT id, name, role, parent_id, created_at, \
             CAST(octet_length(url) + COALESCE(octet_length(agent_card), 0) AS BIGINT) AS size \
             FROM workspaces WHERE status <> {removed} AND id <> $1 \
             AND (parent_id = $1 OR {siblings_or_parent})",
            removed = crate::quoted(WorkspaceStatus::Removed),
        );
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id);
        if let Some(parent_id) = parent_id {
            query = query.bind(parent_id);
        }
        Ok(query.fetch_all(&self.reader).await?)
    }

    /// The workspaces of `ids` (removed ones too), in no particular order; unknown ids
    /// are left out.
    pub async fn workspace_get_many(&self, ids: &[&str]) -> Result<Vec<WorkspaceRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = (1..=ids.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {COLUMNS} FROM workspaces WHERE id IN ({placeholders})");
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(*id);
        }
        Ok(query.fetch_all(&self.reader).await?)
    }

    /// The parent chain above `id` (nearest first), at most `limit` long.
    pub async fn workspace_ancestors(
        &self,
        id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut chain = Vec::new();
        let mut current = id.to_owned();
        while chain.len() < limit {
            let parent: Option<Option<String>> =
                sqlx::query_scalar("SELECT parent_id FROM workspaces WHERE id = $1")
                    .bind(&current)
                    .fetch_optional(&self.reader)
                    .await?;
            match parent.flatten() {
                Some(parent) => {
                    chain.push(parent.clone());
                    current = parent;
                }
                None => break,
            }
        }
        Ok(chain)
    }

    /// The generated files of a workspace, by path.
    pub async fn workspace_files(&self, id: &str) -> Result<Vec<WorkspaceFile>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT path, content FROM workspace_files WHERE workspace_id = $1 ORDER BY path",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Write `patch` if the row is still at `version`; `false` when it moved on (or went).
    #[tracing::instrument(skip(self, patch, reconfiguration, events))]
    pub async fn workspace_update(
        &self,
        id: &str,
        version: i64,
        patch: &WorkspacePatch,
        reconfiguration: Option<&Reconfiguration>,
        events: &[NewEvent],
        max_depth: usize,
    ) -> Result<UpdateOutcome, StoreError> {
        let mut tx = self.begin_events().await?;
        let now = self.now();
        let current_parent: Option<Option<String>> =
            sqlx::query_scalar("SELECT parent_id FROM workspaces WHERE id = $1 AND version = $2")
                .bind(id)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current_parent) = current_parent else {
            return Ok(UpdateOutcome::Stale);
        };
        // A move is checked again here, where no other move can interleave (this
        // transaction holds the event lock on Postgres, the one writer on SQLite): two
        // racing moves, each fine alone, must not close a cycle.
        if let Some(parent) = patch.parent_id.as_deref()
            && current_parent.as_deref() != Some(parent)
            && let Some(refusal) = refuse_parent(&mut tx, id, parent, max_depth).await?
        {
            return Ok(refusal);
        }
        let updated = sqlx::query(
            "UPDATE workspaces SET name = $3, role = $4, tier = $5, parent_id = $6, \
             collapsed = $7, runtime = $8, workspace_dir = $9, x = $10, y = $11, \
             updated_at = $12, version = version + 1 WHERE id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .bind(&patch.name)
        .bind(&patch.role)
        .bind(patch.tier)
        .bind(&patch.parent_id)
        .bind(bool_column(patch.collapsed))
        .bind(&patch.runtime)
        .bind(&patch.workspace_dir)
        .bind(patch.x)
        .bind(patch.y)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(UpdateOutcome::Stale);
        }
        if let Some(reconfiguration) = reconfiguration {
            sqlx::query(
                "UPDATE workspaces SET provider = $2, provider_source = $3, \
                 llm_billing_mode = $4, registry_hash = $5, derivation = $6 WHERE id = $1",
            )
            .bind(id)
            .bind(&reconfiguration.provider)
            .bind(reconfiguration.provider_source)
            .bind(reconfiguration.llm_billing_mode)
            .bind(&reconfiguration.registry_hash)
            .bind(&reconfiguration.derivation)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM workspace_files WHERE workspace_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for file in &reconfiguration.files {
                insert_file(&mut tx, id, file).await?;
            }
        }
        for event in events {
            insert_event(&mut tx, event, now).await?;
        }
        tx.commit().await?;
        Ok(UpdateOutcome::Updated)
    }

    /// Mark a workspace and all its descendants removed, cancel their pending jobs and
    /// append `WORKSPACE_REMOVED` for each, in one transaction. With `purge`, the rows go
    /// too (with their files, jobs and secrets); the events stay as history.
    #[tracing::instrument(skip(self))]
    pub async fn workspace_remove(
        &self,
        id: &str,
        purge: bool,
    ) -> Result<RemovedWorkspaces, StoreError> {
        let mut tx = self.begin_events().await?;
        let now = self.now();
        let (tree, removed) = remove_tree(&mut tx, id, now).await?;
        if purge {
            // Children before parents, so no row is left pointing at a deleted parent.
            for (member, _) in tree.iter().rev() {
                sqlx::query("DELETE FROM secrets WHERE scope = $1")
                    .bind(crate::workspace_scope(member))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE workspaces SET parent_id = NULL WHERE parent_id = $1")
                    .bind(member)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM workspaces WHERE id = $1")
                    .bind(member)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(removed)
    }
}

/// Whether a status read from the database is of a workspace that exists and is not
/// removed.
fn is_live(status: Option<String>) -> Result<bool, StoreError> {
    Ok(match status {
        Some(status) => status.parse::<WorkspaceStatus>()? != WorkspaceStatus::Removed,
        None => false,
    })
}

async fn mark_removed(tx: &mut Transaction<'_, Any>, id: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE workspaces SET status = $3, url = '', updated_at = $2, \
         version = version + 1 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(WorkspaceStatus::Removed.as_str())
    .execute(&mut **tx)
    .await?;
    crate::jobs::cancel_pending(tx, id, now).await?;
    crate::tokens::revoke_all(tx, id, now).await?;
    Ok(())
}

async fn insert_file(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
    file: &WorkspaceFile,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO workspace_files (workspace_id, path, content) VALUES ($1, $2, $3)")
        .bind(workspace_id)
        .bind(&file.path)
        .bind(&file.content)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Insert a workspace's row; its provisioning deadline runs from `now`.
async fn insert_row(
    tx: &mut Transaction<'_, Any>,
    workspace: &NewWorkspace,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workspaces (id, name, role, tier, status, url, parent_id, \
         max_concurrent_tasks, runtime, model, workspace_dir, workspace_access, x, y, \
         external, budget_limit, provider, provider_source, llm_billing_mode, \
         registry_hash, derivation, created_at, updated_at, provisioning_since, \
         last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
         $17, $18, $19, $20, $21, $22, $22, $23, $24)",
    )
    .bind(&workspace.id)
    .bind(&workspace.name)
    .bind(&workspace.role)
    .bind(workspace.tier)
    .bind(workspace.status.as_str())
    .bind(&workspace.url)
    .bind(&workspace.parent_id)
    .bind(workspace.max_concurrent_tasks)
    .bind(&workspace.runtime)
    .bind(&workspace.model)
    .bind(&workspace.workspace_dir)
    .bind(workspace.workspace_access)
    .bind(workspace.x)
    .bind(workspace.y)
    .bind(bool_column(workspace.external))
    .bind(workspace.budget_limit)
    .bind(&workspace.provider)
    .bind(workspace.provider_source)
    .bind(workspace.llm_billing_mode)
    .bind(&workspace.registry_hash)
    .bind(&workspace.derivation)
    .bind(now)
    // The provisioning deadline runs from now; an agent already online counts as seen.
    .bind((workspace.status == WorkspaceStatus::Provisioning).then_some(now))
    .bind((workspace.status == WorkspaceStatus::Online).then_some(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Mark `id` and its live descendants removed (jobs cancelled, tokens revoked), with a
/// `WORKSPACE_REMOVED` for each; the tree's `(id, status before)` and what was removed.
async fn remove_tree(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    now: i64,
) -> Result<(Vec<(String, String)>, RemovedWorkspaces), StoreError> {
    let tree: Vec<(String, String)> = sqlx::query_as(
        "WITH RECURSIVE tree (id) AS ( \
             SELECT id FROM workspaces WHERE id = $1 \
             UNION SELECT w.id FROM workspaces w JOIN tree t ON w.parent_id = t.id) \
         SELECT w.id, w.status FROM workspaces w JOIN tree t ON w.id = t.id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    let mut removed = RemovedWorkspaces::default();
    for (member, status) in &tree {
        // Whatever is not removed yet is removed now, descendants first.
        let live = matches!(
            hatchery_core::decide(status.parse()?, Move::Remove),
            Decision::Change(_)
        );
        if member == id {
            removed.target_was_live = live;
            continue;
        }
        if live {
            mark_removed(tx, member, now).await?;
            insert_event(tx, &NewEvent::removed(member, "{}".to_owned()), now).await?;
            removed.descendants.push(member.clone());
        }
    }
    if removed.target_was_live {
        mark_removed(tx, id, now).await?;
        let payload = format!("{{\"cascade_deleted\":{}}}", removed.descendants.len());
        insert_event(tx, &NewEvent::removed(id, payload), now).await?;
    }
    Ok((tree, removed))
}

/// Why `id` may not move under `parent`, read inside the move's transaction: `parent` must
/// be live, must not be `id` or below it, and the moved subtree must end at most
/// `max_depth` levels below a root (the deepest of it counted, not only `id`).
async fn refuse_parent(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
    parent: &str,
    max_depth: usize,
) -> Result<Option<UpdateOutcome>, StoreError> {
    let live: Option<String> = sqlx::query_scalar("SELECT status FROM workspaces WHERE id = $1")
        .bind(parent)
        .fetch_optional(&mut **tx)
        .await?;
    if !is_live(live)? {
        return Ok(Some(UpdateOutcome::ParentRefused));
    }
    // The parent's ancestors, up to a root; meeting `id` on the way is a cycle.
    let mut above_parent = 0usize;
    let mut current = parent.to_owned();
    loop {
        if current == id {
            return Ok(Some(UpdateOutcome::WouldCycle));
        }
        let next: Option<Option<String>> =
            sqlx::query_scalar("SELECT parent_id FROM workspaces WHERE id = $1")
                .bind(&current)
                .fetch_optional(&mut **tx)
                .await?;
        let Some(next) = next.flatten() else { break };
        above_parent += 1;
        if above_parent >= max_depth {
            return Ok(Some(UpdateOutcome::ParentRefused));
        }
        current = next;
    }
    // How far the subtree reaches below `id` (live members only; the walk stops past the
    // limit, so its cost is bounded by the limit, not by the tree).
    let below: Option<i64> = sqlx::query_scalar(
        "WITH RECURSIVE below (id, depth) AS ( \
             SELECT id, 0 FROM workspaces WHERE id = $1 \
             UNION ALL \
             SELECT w.id, below.depth + 1 FROM workspaces w JOIN below ON w.parent_id = below.id \
             WHERE w.status <> $3 AND below.depth <= $2) \
         SELECT CAST(MAX(depth) AS BIGINT) FROM below",
    )
    .bind(id)
    .bind(i64::try_from(max_depth).unwrap_or(i64::MAX))
    .bind(WorkspaceStatus::Removed.as_str())
    .fetch_one(&mut **tx)
    .await?;
    let below = usize::try_from(below.unwrap_or(0)).unwrap_or(usize::MAX);
    // `id` lands one level below its parent; its deepest descendant `below` more.
    if above_parent + 1 + below > max_depth {
        return Ok(Some(UpdateOutcome::ParentRefused));
    }
    Ok(None)
}
