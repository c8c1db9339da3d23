//! Org import: the plan of a template (dry run), and the import itself — every node built
//! exactly as a single create builds a workspace, the whole tree written in one
//! transaction. Best effort by default (Molecule's contract): a node that cannot be
//! created is stored `failed` with its reason, its subtree `failed` with "parent failed",
//! the rest provisioned. `strict`: any problem refuses the whole import, nothing written.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use hatchery_core::org::{Node, OrgTemplate, Plan, PlanContext, PlannedNode, plan};
use hatchery_core::{EventKind, WorkspaceStatus};
use hatchery_store::{
    EarlierImports, ImportOutcome, ImportedWorkspace, NewEvent, NewWorkspace, WorkspaceFile,
};
use serde_json::json;

use super::workspaces::{Built, Canvas, CreateWorkspace};
use super::{App, Error, Resource, store_error};
use files::{TemplateFiles, read_template_files};

mod files;

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
    pub status: WorkspaceStatus,
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

fn org_not_found(dir: &str) -> Error {
    Error::NotFound {
        kind: Resource::OrgTemplate,
        id: dir.to_owned(),
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

    /// The org templates of the templates directory, sorted by `dir`.
    pub async fn org_templates(&self) -> Result<Vec<TemplateSummary>, Error> {
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
    pub fn org_template(&self, dir: &str) -> Result<(OrgTemplate, Option<PathBuf>), Error> {
        let plain = !dir.is_empty()
            && dir != "."
            && dir != ".."
            && dir
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !plain {
            return Err(Error::invalid(
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
            Error::invalid(
                "invalid org directory",
                "invalid_org_directory",
                Some("dir"),
                detail,
            )
        })?;
        let template = hatchery_core::org::parse_template(&bytes).map_err(|e| {
            Error::invalid(
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
            return Err(Error::OrgRefused {
                plan: serde_json::to_value(&plan).unwrap_or_default(),
            });
        }
        if !plan.missing_env.is_empty() && !options.force {
            return Err(Error::MissingEnv {
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
            let failed: Vec<serde_json::Value> = answer
                .iter()
                .filter_map(|n| Some(json!({"name": n.name, "error": n.error.as_ref()?})))
                .collect();
            let mut plan = serde_json::to_value(&plan).unwrap_or_default();
            plan["failed"] = json!(failed);
            return Err(Error::OrgRefused { plan });
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

/// The most files a request may send with an inline template.
pub const MAX_SENT_FILES: usize = 1000;

/// Lay out the files sent with an inline template in a fresh private directory, so they
/// are read exactly as a template directory's would be (same confinement, same limits).
/// Each path must be plain and relative; the whole request is already bounded in size.
pub(crate) fn unpack_files(
    files: &std::collections::BTreeMap<String, String>,
) -> Result<tempfile::TempDir, Error> {
    let refuse = |detail: String| {
        Error::invalid(
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
        .map_err(|e| Error::internal("failed to unpack the template's files", e))?;
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
