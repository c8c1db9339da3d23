//! Org import: the plan of a template (dry run), and the import itself — every node built
//! exactly as a single create builds a workspace, the whole tree written in one
//! transaction. Best effort by default (Molecule's contract): a node that cannot be
//! created is stored `failed` with its reason, its subtree `failed` with "parent failed",
//! the rest provisioned. `strict`: any problem refuses the whole import, nothing written.
//! The templates directory is read in `templates.rs`; what a node reads from disk, and
//! its confinement, in `files.rs`.

use std::collections::HashMap;
use std::path::Path;

use hatchery_api::org::{FailedNode, RefusedPlan};
use hatchery_core::org::{Node, OrgTemplate, Plan, PlanContext, PlannedNode, plan};
use hatchery_core::{EventKind, WorkspaceStatus};
use hatchery_store::{
    EarlierImports, ImportOutcome, ImportedWorkspace, NewEvent, NewWorkspace, WorkspaceFile,
};
use serde_json::json;

use super::workspaces::{Canvas, CreateWorkspace, WorkspaceToStore};
use super::{App, Error, store_error};
use files::{TemplateFiles, read_template_files};

mod files;
mod templates;

pub use files::MAX_SENT_FILES;
pub(crate) use files::unpack_files;

/// How an import treats problems and earlier imports of the same org.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Any problem refuses the whole import.
    pub strict: bool,
    /// Import even when required environment variables are not global secrets.
    pub force: bool,
    /// What to do about a live earlier import of the same org (refuse by default).
    pub earlier: EarlierImports,
    /// Record the tree as the org's import (a bundle import is not one).
    pub as_org: bool,
}

/// One imported workspace, as the answer lists it.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct ImportedNode {
    /// Its new id.
    pub id: String,
    pub name: String,
    pub tier: i64,
    /// `provisioning`, `online`/`awaiting_agent` (external), or `failed`.
    pub status: WorkspaceStatus,
    /// Why it failed.
    pub error: Option<String>,
}

/// Why a failed node's subtree failed.
const PARENT_FAILED: &str = "parent failed";

/// Why a template was not imported at all: nothing was written. The app error and the
/// API error both carry it as it is, so its messages are said once.
#[derive(Debug, thiserror::Error)]
pub enum OrgRefusal {
    /// Template-level problems, or any problem in strict mode.
    #[error("org template cannot be imported")]
    Plan {
        /// The plan, with every node's problems.
        plan: serde_json::Value,
    },
    /// Required environment variables of the template are not global secrets.
    #[error("missing required environment variables")]
    MissingEnv {
        /// The requirements no global secret meets.
        missing: Vec<String>,
        /// The template's name.
        template: String,
    },
}
impl App {
    /// Plan the import of `template` on the registry in force, with the global secrets
    /// as the keys every node will hold. Changes nothing.
    pub async fn org_plan(
        &self,
        template: &OrgTemplate,
        base: Option<&Path>,
    ) -> Result<Plan, Error> {
        Ok(self.org_plan_read(template, base).await?.0)
    }

    /// [`Self::org_plan`], with the template its nodes' workspace templates resolve it to,
    /// and each node's files in plan order (none for a node whose files do not read: the
    /// plan says why).
    async fn org_plan_read(
        &self,
        template: &OrgTemplate,
        base: Option<&Path>,
    ) -> Result<(Plan, OrgTemplate, Vec<Vec<WorkspaceFile>>), Error> {
        let snapshot = self.registry.snapshot()?;
        let globals = self.global_secret_names().await?;
        let names: Vec<&str> = globals.iter().map(String::as_str).collect();
        // Nodes based on a workspace template take what they do not say from it; the
        // files a node names must read, from inside the template's directory.
        let TemplateFiles {
            resolved,
            template_problems,
            files: read,
        } = read_template_files(self.templates.as_deref(), template, base).await?;
        let mut planned = plan(
            &resolved,
            &snapshot.registry,
            PlanContext {
                global_secrets: &names,
                platform_key_configured: self.platform_key.is_some(),
            },
        );
        let mut files = Vec::with_capacity(read.len());
        // Plan and flattening visit the tree in the same order: parents first.
        for (entry, read) in planned.nodes.iter_mut().zip(read) {
            match read {
                Ok(read) => files.push(read),
                Err(problem) => {
                    entry.problems.push(problem.to_string());
                    files.push(Vec::new());
                }
            }
            if let Some(problem) = template_problems.get(&entry.path) {
                entry.problems.push(problem.clone());
            }
        }
        Ok((planned, resolved, files))
    }

    /// Write an import's tree (one transaction), then tell who needs to know: the event
    /// stream, and the agents of a replaced earlier import, which stop.
    async fn write_import(
        &self,
        template: &OrgTemplate,
        options: ImportOptions,
        items: &[ImportedWorkspace],
    ) -> Result<(), Error> {
        let total = items.len();
        let outcome = self
            .store
            .workspace_import(
                options.as_org.then_some(template.name.as_str()),
                options.earlier,
                items,
                |written| {
                    if written * 2 >= total && written * 2 < total + 2 {
                        self.crash_point("org-import-midway");
                    }
                },
            )
            .await
            .map_err(store_error("failed to import the org"))?;
        let removed = match outcome {
            ImportOutcome::Imported { removed } => removed,
            ImportOutcome::AlreadyImported(roots) => {
                return Err(Error::Conflict {
                    code: "org_already_imported",
                    message: format!(
                        "org {:?} is already imported (root {}): import it with replace=true to replace it, or duplicate=true for a second copy",
                        template.name,
                        roots.join(", ")
                    ),
                });
            }
        };
        self.hub.poke();
        if !removed.is_empty() {
            self.tokens.clear();
            self.stop_agents(&removed).await;
        }
        Ok(())
    }

    /// Import `template`: plan it, refuse what cannot be imported at all (template-level
    /// problems; missing required env without `force`; any problem with `strict`), then
    /// write the whole tree in one transaction.
    pub async fn org_import(
        &self,
        template: &OrgTemplate,
        base: Option<&Path>,
        options: ImportOptions,
    ) -> Result<Vec<ImportedNode>, Error> {
        let (plan, resolved, files) = self.org_plan_read(template, base).await?;
        let template = &resolved;
        if !plan.problems.is_empty() || (options.strict && !plan.is_clean()) {
            return Err(OrgRefusal::Plan {
                plan: serde_json::to_value(&plan).unwrap_or_default(),
            }
            .into());
        }
        if !plan.missing_env.is_empty() && !options.force {
            return Err(OrgRefusal::MissingEnv {
                missing: plan.missing_env.clone(),
                template: template.name.clone(),
            }
            .into());
        }
        let nodes = flatten(&template.workspaces);
        let mut ids: HashMap<&str, String> = HashMap::new();
        let mut failed: HashMap<&str, bool> = HashMap::new();
        let mut items = Vec::with_capacity(nodes.len());
        let mut answer = Vec::with_capacity(nodes.len());
        // Plan and flattening visit the tree in the same order: parents first.
        for ((planned, node), files) in plan.nodes.iter().zip(nodes).zip(files) {
            let id = uuid::Uuid::new_v4().hyphenated().to_string();
            let parent_id = planned.parent.as_deref().and_then(|p| ids.get(p).cloned());
            let parent_failed = planned
                .parent
                .as_deref()
                .is_some_and(|p| failed.get(p).copied().unwrap_or(false));
            let reason = if parent_failed {
                Some(PARENT_FAILED.to_owned())
            } else if planned.problems.is_empty() {
                None
            } else {
                Some(planned.problems.join("; "))
            };
            let built = match reason {
                Some(reason) => Err(reason),
                None => self
                    .build_workspace(request_of(node, planned, parent_id.clone()), id.clone())
                    .await
                    .map_err(|e| e.to_string()),
            };
            let (item, entry) = match built {
                Ok(mut built) => {
                    // Read with the plan: a node whose files did not read failed above.
                    built.files.extend(files);
                    imported(built, &id, planned)
                }
                Err(reason) => failed_item(node, planned, &id, parent_id, reason),
            };
            failed.insert(&planned.path, entry.status == WorkspaceStatus::Failed);
            ids.insert(&planned.path, id);
            items.push(item);
            answer.push(entry);
        }
        // Strict: a node that failed only when built (a field the plan does not check)
        // refuses the import too.
        if options.strict && answer.iter().any(|n| n.error.is_some()) {
            let failed = answer
                .iter()
                .filter_map(|n| {
                    Some(FailedNode {
                        error: n.error.clone()?,
                        name: n.name.clone(),
                    })
                })
                .collect();
            let plan = RefusedPlan {
                plan,
                failed: Some(failed),
            };
            return Err(OrgRefusal::Plan {
                plan: serde_json::to_value(&plan).unwrap_or_default(),
            }
            .into());
        }
        self.write_import(template, options, &items).await?;
        if items.iter().any(|i| i.provision) {
            self.wake_provisioner();
        }
        for entry in &answer {
            if entry.status == WorkspaceStatus::Failed {
                self.metrics.provisioning_failed(1);
            } else {
                self.metrics.workspace_created();
            }
        }
        tracing::info!(org = %template.name, workspaces = answer.len(), "org imported");
        Ok(answer)
    }
}

/// The tree's nodes, parents before children, as the planner walks it.
fn flatten(nodes: &[Node]) -> Vec<&Node> {
    let mut all = Vec::new();
    for node in nodes {
        all.push(node);
        all.extend(flatten(&node.children));
    }
    all
}

/// A node as the create request it stands for, with the runtime, model and tier the plan
/// resolved (node, else the template's defaults).
fn request_of(node: &Node, planned: &PlannedNode, parent_id: Option<String>) -> CreateWorkspace {
    CreateWorkspace {
        name: Some(node.name.clone()),
        role: node.role.clone(),
        // Its workspace template was applied to the node already.
        template: None,
        tier: Some(planned.tier),
        model: planned.model.clone(),
        runtime: planned.runtime.clone(),
        external: Some(node.external),
        url: node.url.clone(),
        workspace_dir: node.workspace_dir.clone(),
        workspace_access: node.workspace_access.clone(),
        parent_id,
        max_concurrent_tasks: node
            .max_concurrent_tasks
            .and_then(|n| i64::try_from(n).ok()),
        canvas: node.canvas.map(|c| Canvas { x: c.x, y: c.y }),
        ..CreateWorkspace::default()
    }
}

fn imported(
    built: WorkspaceToStore,
    id: &str,
    planned: &PlannedNode,
) -> (ImportedWorkspace, ImportedNode) {
    let entry = ImportedNode {
        id: id.to_owned(),
        name: planned.name.clone(),
        tier: built.workspace.tier,
        status: built.status,
        error: None,
    };
    let item = ImportedWorkspace {
        workspace: built.workspace,
        failure_reason: None,
        files: built.files,
        events: built.events,
        provision: built.provision,
        token: built.token.map(|t| t.stored),
    };
    (item, entry)
}

/// A node that cannot be created: stored `failed`, with why, never `provisioning`.
fn failed_item(
    node: &Node,
    planned: &PlannedNode,
    id: &str,
    parent_id: Option<String>,
    reason: String,
) -> (ImportedWorkspace, ImportedNode) {
    // Its name as written when it is one a workspace may have, else a placeholder.
    let name_ok = hatchery_core::check_text_fields(
        &hatchery_core::TextFields {
            name: Some(&node.name),
            ..Default::default()
        },
        true,
    )
    .is_ok();
    let name = if name_ok {
        node.name.clone()
    } else {
        "(invalid name)".to_owned()
    };
    let tier = if (1..=4).contains(&planned.tier) {
        planned.tier
    } else {
        2
    };
    let workspace = NewWorkspace {
        id: id.to_owned(),
        name: name.clone(),
        role: None,
        tier,
        status: WorkspaceStatus::Failed,
        url: String::new(),
        parent_id,
        max_concurrent_tasks: 1,
        runtime: planned.runtime.clone().unwrap_or_default(),
        model: planned.model.clone().unwrap_or_default(),
        workspace_dir: None,
        workspace_access: "none",
        x: 0.0,
        y: 0.0,
        external: node.external,
        budget_limit: None,
        provider: None,
        provider_source: "unresolved",
        llm_billing_mode: None,
        registry_hash: String::new(),
        derivation: "null".to_owned(),
    };
    let event = NewEvent::about(
        EventKind::WorkspaceProvisionFailed,
        id,
        json!({"name": name, "reason": reason}).to_string(),
    );
    let entry = ImportedNode {
        id: id.to_owned(),
        name,
        tier,
        status: WorkspaceStatus::Failed,
        error: Some(reason.clone()),
    };
    let item = ImportedWorkspace {
        workspace,
        failure_reason: Some(reason),
        files: Vec::new(),
        events: vec![event],
        provision: false,
        token: None,
    };
    (item, entry)
}
