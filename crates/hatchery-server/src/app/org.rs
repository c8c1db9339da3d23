//! Org import: the plan of a template (dry run), and the import itself — every node built
//! exactly as a single create builds a workspace, the whole tree written in one
//! transaction. Best effort by default (Molecule's contract): a node that cannot be
//! created is stored `failed` with its reason, its subtree `failed` with "parent failed",
//! the rest provisioned. `strict`: any problem refuses the whole import, nothing written.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use hatchery_core::org::{Node, OrgTemplate, Plan, PlanContext, PlannedNode, plan};
use hatchery_store::{
    EarlierImports, ImportOutcome, ImportedWorkspace, NewEvent, NewWorkspace, WorkspaceFile,
};
use serde_json::json;

use super::workspaces::{Built, Canvas, CreateWorkspace};
use super::{App, store_error};
use crate::error::ApiError;

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
pub struct ImportedNode {
    /// Its new id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its tier.
    pub tier: i64,
    /// `provisioning`, `online`/`awaiting_agent` (external), or `failed`.
    pub status: &'static str,
    /// Why it failed.
    pub error: Option<String>,
}

/// Why a failed node's subtree failed.
const PARENT_FAILED: &str = "parent failed";
/// The largest template file read.
const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

/// An org template of the templates directory, as `GET /org/templates` lists it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TemplateSummary {
    /// Its name in the directory (what an import's `dir` names).
    pub dir: String,
    /// The org's name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// How many workspaces it creates.
    pub workspaces: usize,
    /// Required environment (names, or `one of A, B`).
    pub required_env: Vec<String>,
    /// Recommended environment.
    pub recommended_env: Vec<String>,
    /// Whether the global secrets meet every requirement.
    pub required_env_satisfied: bool,
    /// Why it cannot be read, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn org_not_found(dir: &str) -> ApiError {
    ApiError::NotFoundDynamic {
        message: format!("org template not found: {dir}"),
        code: "org_template_not_found",
    }
}

impl App {
    /// The workspace templates of the templates directory (each a directory with a
    /// `config.yaml`; `org/` holds org templates), sorted by id, as spec §10 sums them up.
    pub fn workspace_templates(&self) -> Vec<serde_json::Value> {
        let Some(root) = self.templates.as_deref() else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(root) else {
            return Vec::new();
        };
        let mut found: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.path())))
            .filter(|(name, path)| name != "org" && path.join("config.yaml").is_file())
            .collect();
        found.sort();
        found
            .into_iter()
            .map(|(id, path)| template_summary(&id, &path))
            .collect()
    }

    /// `template` with every node that names a workspace template (`template: coder`)
    /// given what it does not say itself — runtime, model, tier, role — from that
    /// template's `config.yaml`, which may in turn name one it is based on. Problems (an
    /// unknown template, a cycle of them) by node path.
    fn resolve_workspace_templates(
        &self,
        template: &OrgTemplate,
    ) -> (OrgTemplate, HashMap<String, String>) {
        let mut resolved = template.clone();
        let mut problems = HashMap::new();
        let mut pending: Vec<(String, &mut Node)> = resolved
            .workspaces
            .iter_mut()
            .enumerate()
            .map(|(i, n)| (format!("workspaces[{i}]"), n))
            .collect();
        while let Some((path, node)) = pending.pop() {
            if let Some(name) = node.template.clone()
                && let Err(problem) = self.apply_workspace_template(node, &name)
            {
                problems.insert(path.clone(), problem);
            }
            pending.extend(
                node.children
                    .iter_mut()
                    .enumerate()
                    .map(|(i, c)| (format!("{path}.children[{i}]"), c)),
            );
        }
        (resolved, problems)
    }

    /// Fill `node`'s gaps from workspace template `name` and those it is based on.
    fn apply_workspace_template(&self, node: &mut Node, name: &str) -> Result<(), String> {
        let mut seen: Vec<String> = Vec::new();
        let mut next = Some(name.to_owned());
        while let Some(name) = next.take() {
            if seen.contains(&name) {
                seen.push(name);
                return Err(format!(
                    "template: a cycle of templates: {}",
                    seen.join(" → ")
                ));
            }
            let plain = !name.is_empty()
                && name != "org"
                && !name.starts_with('.')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            let config = self
                .templates
                .as_deref()
                .filter(|_| plain)
                .map(|root| root.join(&name).join("config.yaml"))
                .and_then(|path| std::fs::read(path).ok())
                .ok_or_else(|| format!("template: workspace template {name:?} not found"))?;
            let config = hatchery_core::org::yaml_to_json(&config)
                .map_err(|e| format!("template: {name:?}: {e}"))?;
            let text = |key: &str| config.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            node.runtime = node.runtime.take().or_else(|| text("runtime"));
            node.model = node.model.take().or_else(|| text("model"));
            node.role = node.role.take().or_else(|| text("description"));
            node.tier = node
                .tier
                .or_else(|| config.get("tier").and_then(serde_json::Value::as_i64));
            seen.push(name);
            next = text("template");
        }
        Ok(())
    }

    /// The org templates of the templates directory, sorted by `dir`.
    pub async fn org_templates(&self) -> Result<Vec<TemplateSummary>, ApiError> {
        let Some(root) = self.templates.as_deref().map(|t| t.join("org")) else {
            return Ok(Vec::new());
        };
        let Ok(entries) = std::fs::read_dir(&root) else {
            return Ok(Vec::new());
        };
        let mut dirs: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_owned();
                let path = entry.path();
                if path.is_dir() && path.join("org.yaml").is_file() {
                    Some(name)
                } else {
                    name.strip_suffix(".yaml").map(str::to_owned)
                }
            })
            .collect();
        dirs.sort();
        let globals = self.global_secret_names().await?;
        let held: Vec<&str> = globals.iter().map(String::as_str).collect();
        Ok(dirs
            .into_iter()
            .map(|dir| match self.org_template(&dir) {
                Ok((template, _)) => summary(dir, &template, &held),
                Err(error) => TemplateSummary {
                    dir,
                    name: String::new(),
                    description: String::new(),
                    workspaces: 0,
                    required_env: Vec::new(),
                    recommended_env: Vec::new(),
                    required_env_satisfied: false,
                    error: Some(error.to_string()),
                },
            })
            .collect())
    }

    /// Read the org template `dir` of the templates directory: `org/<dir>.yaml` or
    /// `org/<dir>/org.yaml`, never anything outside `org/` (no `..`, no separators, no
    /// symlink out).
    pub fn org_template(&self, dir: &str) -> Result<(OrgTemplate, Option<PathBuf>), ApiError> {
        let plain = !dir.is_empty()
            && dir != "."
            && dir != ".."
            && dir
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !plain {
            return Err(ApiError::bad_request(
                "invalid org directory",
                "invalid_org_directory",
                Some("dir"),
                format!("{dir:?}: letters, digits, '-', '_' and '.' only"),
            ));
        }
        let root = self
            .templates
            .as_deref()
            .map(|t| t.join("org"))
            .ok_or_else(|| org_not_found(dir))?;
        let root = std::fs::canonicalize(&root).map_err(|_| org_not_found(dir))?;
        let path = [
            root.join(format!("{dir}.yaml")),
            root.join(dir).join("org.yaml"),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .filter(|p| p.starts_with(&root))
        .ok_or_else(|| org_not_found(dir))?;
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        let bytes = if size > MAX_TEMPLATE_BYTES {
            Err(format!("larger than {MAX_TEMPLATE_BYTES} bytes"))
        } else {
            std::fs::read(&path).map_err(|e| e.to_string())
        }
        .map_err(|detail| {
            ApiError::bad_request(
                "invalid org directory",
                "invalid_org_directory",
                Some("dir"),
                detail,
            )
        })?;
        let template = hatchery_core::org::parse_template(&bytes).map_err(|e| {
            ApiError::bad_request(
                "invalid org template",
                "invalid_org_template",
                Some("dir"),
                e.to_string(),
            )
        })?;
        // A directory template's files are beside its org.yaml; a single file has none.
        let base = (path.file_name() == Some(std::ffi::OsStr::new("org.yaml")))
            .then(|| path.parent().map(Path::to_path_buf))
            .flatten();
        Ok((template, base))
    }
    /// Plan the import of `template` on the registry in force, with the global secrets
    /// as the keys every node will hold. Changes nothing.
    pub async fn org_plan(
        &self,
        template: &OrgTemplate,
        base: Option<&Path>,
    ) -> Result<Plan, ApiError> {
        let snapshot = self
            .registry
            .snapshot()
            .map_err(|e| ApiError::RegistryUnavailable(e.to_string()))?;
        let globals = self.global_secret_names().await?;
        let names: Vec<&str> = globals.iter().map(String::as_str).collect();
        // Nodes based on a workspace template take what they do not say from it.
        let (resolved, template_problems) = self.resolve_workspace_templates(template);
        let template = &resolved;
        let mut planned = plan(
            template,
            &snapshot.registry,
            PlanContext {
                global_secrets: &names,
                platform_key_configured: self.platform_key.is_some(),
            },
        );
        // The files a node names must read, from inside the template's directory.
        for (node, entry) in flatten(&template.workspaces)
            .into_iter()
            .zip(&mut planned.nodes)
        {
            if let Err(problem) = node_files(template, node, base) {
                entry.problems.push(problem);
            }
            if let Some(problem) = template_problems.get(&entry.path) {
                entry.problems.push(problem.clone());
            }
        }
        Ok(planned)
    }

    /// Write an import's tree (one transaction), then tell who needs to know: the event
    /// stream, and the agents of a replaced earlier import, which stop.
    async fn write_import(
        &self,
        template: &OrgTemplate,
        options: ImportOptions,
        items: &[ImportedWorkspace],
    ) -> Result<(), ApiError> {
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
                return Err(ApiError::Conflict {
                    message: format!(
                        "org {:?} is already imported (root {}): import it with replace=true to replace it, or duplicate=true for a second copy",
                        template.name,
                        roots.join(", ")
                    ),
                    code: "org_already_imported",
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
    ) -> Result<Vec<ImportedNode>, ApiError> {
        let plan = self.org_plan(template, base).await?;
        let (resolved, _) = self.resolve_workspace_templates(template);
        let template = &resolved;
        if !plan.problems.is_empty() || (options.strict && !plan.is_clean()) {
            return Err(ApiError::OrgRefused {
                plan: serde_json::to_value(&plan).unwrap_or_default(),
            });
        }
        if !plan.missing_env.is_empty() && !options.force {
            return Err(ApiError::MissingEnv {
                missing: plan.missing_env.clone(),
                template: template.name.clone(),
            });
        }
        let nodes = flatten(&template.workspaces);
        let mut ids: HashMap<&str, String> = HashMap::new();
        let mut failed: HashMap<&str, bool> = HashMap::new();
        let mut items = Vec::with_capacity(nodes.len());
        let mut answer = Vec::with_capacity(nodes.len());
        // Plan and flattening visit the tree in the same order: parents first.
        for (planned, node) in plan.nodes.iter().zip(nodes) {
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
                    // Checked by the plan: a node with unreadable files failed above.
                    built
                        .files
                        .extend(node_files(template, node, base).unwrap_or_default());
                    imported(built, &id, planned)
                }
                Err(reason) => failed_item(node, planned, &id, parent_id, reason),
            };
            failed.insert(&planned.path, entry.status == "failed");
            ids.insert(&planned.path, id);
            items.push(item);
            answer.push(entry);
        }
        // Strict: a node that failed only when built (a field the plan does not check)
        // refuses the import too.
        if options.strict && answer.iter().any(|n| n.error.is_some()) {
            let failed: Vec<serde_json::Value> = answer
                .iter()
                .filter_map(|n| Some(json!({"name": n.name, "error": n.error.as_ref()?})))
                .collect();
            let mut plan = serde_json::to_value(&plan).unwrap_or_default();
            plan["failed"] = json!(failed);
            return Err(ApiError::OrgRefused { plan });
        }
        self.write_import(template, options, &items).await?;
        if items.iter().any(|i| i.provision) {
            self.wake_provisioner();
        }
        for entry in &answer {
            if entry.status == "failed" {
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

fn imported(built: Built, id: &str, planned: &PlannedNode) -> (ImportedWorkspace, ImportedNode) {
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
        status: "failed",
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
        "WORKSPACE_PROVISION_FAILED",
        id,
        json!({"name": name, "reason": reason}).to_string(),
    );
    let entry = ImportedNode {
        id: id.to_owned(),
        name,
        tier,
        status: "failed",
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

fn summary(dir: String, template: &OrgTemplate, held: &[&str]) -> TemplateSummary {
    let describe = |requirements: &[hatchery_core::org::EnvRequirement]| -> Vec<String> {
        requirements
            .iter()
            .map(hatchery_core::org::EnvRequirement::describe)
            .collect()
    };
    let required: Vec<&hatchery_core::org::EnvRequirement> = template
        .required_env
        .iter()
        .chain(&template.defaults.required_env)
        .collect();
    TemplateSummary {
        dir,
        name: template.name.clone(),
        description: template.description.clone().unwrap_or_default(),
        workspaces: flatten(&template.workspaces).len(),
        required_env: describe(&required.iter().map(|r| (*r).clone()).collect::<Vec<_>>()),
        recommended_env: describe(&template.recommended_env),
        required_env_satisfied: required
            .iter()
            .all(|r| r.names().iter().any(|n| held.contains(&n.as_str()))),
        error: None,
    }
}

/// The most files a node's `files_dir` may hold, and the most bytes of all its files.
const MAX_NODE_FILES: usize = 200;
const MAX_NODE_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The files a node brings to its workspace's config: its prompts (inline, or read from
/// `*_file`, the node's own or the template's defaults) and its `files_dir` under
/// `files/`. Paths are relative to the template's directory and never leave it.
fn node_files(
    template: &OrgTemplate,
    node: &Node,
    base: Option<&Path>,
) -> Result<Vec<WorkspaceFile>, String> {
    let defaults = &template.defaults;
    let read = |field: &str, relative: &str| -> Result<String, String> {
        let path = confined(base, field, relative)?;
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        if size > MAX_NODE_FILE_BYTES {
            return Err(format!(
                "{field}: {relative:?} is larger than {MAX_NODE_FILE_BYTES} bytes"
            ));
        }
        std::fs::read_to_string(&path).map_err(|e| format!("{field}: {relative:?}: {e}"))
    };
    let mut files = Vec::new();
    let mut prompt = |name: &str, inline: Option<&String>, file: Option<&String>, field: &str| {
        let content = match (inline, file) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(relative)) => Some(read(field, relative)?),
            (None, None) => None,
        };
        if let Some(content) = content {
            files.push(WorkspaceFile {
                path: name.to_owned(),
                content,
            });
        }
        Ok::<_, String>(())
    };
    prompt(
        "system-prompt.md",
        node.system_prompt.as_ref(),
        None,
        "system_prompt",
    )?;
    prompt(
        "initial-prompt.md",
        node.initial_prompt
            .as_ref()
            .or(defaults.initial_prompt.as_ref()),
        node.initial_prompt_file
            .as_ref()
            .or(defaults.initial_prompt_file.as_ref()),
        "initial_prompt_file",
    )?;
    prompt(
        "idle-prompt.md",
        node.idle_prompt.as_ref().or(defaults.idle_prompt.as_ref()),
        node.idle_prompt_file
            .as_ref()
            .or(defaults.idle_prompt_file.as_ref()),
        "idle_prompt_file",
    )?;
    for (index, schedule) in node.schedules.iter().enumerate() {
        if let (None, Some(relative)) = (&schedule.prompt, &schedule.prompt_file) {
            read(&format!("schedules[{index}].prompt_file"), relative)?;
        }
    }
    if let Some(relative) = &node.files_dir {
        let root = confined(base, "files_dir", relative)?;
        let mut total = 0;
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let entries =
                std::fs::read_dir(&dir).map_err(|e| format!("files_dir: {relative:?}: {e}"))?;
            for entry in entries {
                let path = entry.map_err(|e| format!("files_dir: {e}"))?.path();
                // Symlinks are followed only to where they stay inside the directory.
                let target = std::fs::canonicalize(&path).map_err(|e| format!("files_dir: {e}"))?;
                if !target.starts_with(&root) {
                    return Err(format!(
                        "files_dir: {} points outside the template",
                        path.display()
                    ));
                }
                if target.is_dir() {
                    pending.push(target);
                    continue;
                }
                total += std::fs::metadata(&target).map_or(0, |m| m.len());
                if files.len() >= MAX_NODE_FILES || total > MAX_NODE_FILE_BYTES {
                    return Err(format!(
                        "files_dir: {relative:?} holds more than {MAX_NODE_FILES} files or {MAX_NODE_FILE_BYTES} bytes"
                    ));
                }
                let content = std::fs::read_to_string(&target)
                    .map_err(|e| format!("files_dir: {}: {e}", path.display()))?;
                let inside = target.strip_prefix(&root).unwrap_or(&target);
                files.push(WorkspaceFile {
                    path: format!("files/{}", inside.display()),
                    content,
                });
            }
        }
    }
    Ok(files)
}

/// The most files a request may send with an inline template.
pub const MAX_SENT_FILES: usize = 1000;

/// Lay out the files sent with an inline template in a fresh private directory, so they
/// are read exactly as a template directory's would be (same confinement, same limits).
/// Each path must be plain and relative; the whole request is already bounded in size.
pub(crate) fn unpack_files(
    files: &std::collections::BTreeMap<String, String>,
) -> Result<tempfile::TempDir, ApiError> {
    let refuse = |detail: String| {
        ApiError::bad_request(
            "invalid request body",
            "invalid_template_files",
            Some("files"),
            detail,
        )
    };
    if files.len() > MAX_SENT_FILES {
        return Err(refuse(format!("at most {MAX_SENT_FILES} files")));
    }
    let dir = tempfile::Builder::new()
        .prefix("hatchery-org-")
        .tempdir()
        .map_err(|e| ApiError::internal("failed to unpack the template's files", e))?;
    for (relative, content) in files {
        let plain = !relative.is_empty()
            && Path::new(relative)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(refuse(format!(
                "files: {relative:?} must be a plain relative path"
            )));
        }
        let path = dir.path().join(relative);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, content));
        if let Err(e) = written {
            // A path that is both a file and a directory, say.
            return Err(refuse(format!("files: {relative:?}: {e}")));
        }
    }
    Ok(dir)
}

/// `relative` under the template directory `base`, resolved: a plain relative path (no
/// `..`, not absolute) whose real location (symlinks followed) is inside `base`.
fn confined(base: Option<&Path>, field: &str, relative: &str) -> Result<PathBuf, String> {
    let Some(base) = base else {
        return Err(format!(
            "{field}: {relative:?} needs a template directory (org/<name>/org.yaml, or `hatchery org import DIR`); an inline or single-file template has no files"
        ));
    };
    let plain = !relative.is_empty()
        && Path::new(relative)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !plain {
        return Err(format!(
            "{field}: {relative:?} must be a relative path inside the template"
        ));
    }
    let base = std::fs::canonicalize(base).map_err(|e| format!("{field}: {e}"))?;
    let path = std::fs::canonicalize(base.join(relative))
        .map_err(|e| format!("{field}: {relative:?}: {e}"))?;
    if !path.starts_with(&base) {
        return Err(format!("{field}: {relative:?} points outside the template"));
    }
    Ok(path)
}

/// A workspace template's summary from its `config.yaml` (strict YAML; one that does not
/// read is listed with its `error`).
fn template_summary(id: &str, dir: &Path) -> serde_json::Value {
    let config = std::fs::read(dir.join("config.yaml"))
        .map_err(|e| e.to_string())
        .and_then(|bytes| hatchery_core::org::yaml_to_json(&bytes).map_err(|e| e.to_string()));
    let skills: Vec<String> = std::fs::read_dir(dir.join("skills"))
        .map(|entries| {
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect();
            names.sort();
            names
        })
        .unwrap_or_default();
    let mut summary = json!({"id": id, "skills": skills, "skill_count": skills.len()});
    match config {
        Ok(config) => {
            let text = |key: &str| config.get(key).cloned().unwrap_or(serde_json::Value::Null);
            summary["name"] = config.get("name").cloned().unwrap_or_else(|| json!(id));
            summary["description"] = config
                .get("description")
                .cloned()
                .unwrap_or_else(|| json!(""));
            summary["tier"] = text("tier");
            summary["runtime"] = text("runtime");
            summary["model"] = text("model");
            for optional in ["models", "required_env", "provision_timeout_seconds"] {
                if let Some(value) = config.get(optional) {
                    summary[optional] = value.clone();
                }
            }
        }
        Err(error) => {
            summary["name"] = json!(id);
            summary["error"] = json!(error);
        }
    }
    summary
}
