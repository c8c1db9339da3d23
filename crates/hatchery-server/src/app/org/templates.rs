//! The templates directory: the workspace templates and org templates it holds, listed
//! with what each needs, and an org template read by name (strict YAML, confined to its
//! directory).

use std::path::{Path, PathBuf};

use hatchery_api::org::{TemplateSummary, WorkspaceTemplateView};
use hatchery_core::org::OrgTemplate;
use serde_json::{Value, json};

use super::flatten;
use crate::app::{App, Error, Resource};

/// The largest template file read.
pub(super) const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

fn org_not_found(dir: &str) -> Error {
    Error::NotFound {
        kind: Resource::OrgTemplate,
        id: dir.to_owned(),
    }
}

impl App {
    /// The workspace templates of the templates directory (each a directory with a
    /// `config.yaml`; `org/` holds org templates), sorted by id, as spec §10 sums them up.
    pub fn workspace_templates(&self) -> Vec<WorkspaceTemplateView> {
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

/// A workspace template's summary from its `config.yaml` (strict YAML; one that does not
/// read is listed with its `error`).
fn template_summary(id: &str, dir: &Path) -> WorkspaceTemplateView {
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
    let mut summary = WorkspaceTemplateView {
        description: None,
        error: None,
        id: id.to_owned(),
        model: None,
        models: None,
        name: json!(id),
        provision_timeout_seconds: None,
        required_env: None,
        runtime: None,
        skill_count: skills.len(),
        skills,
        tier: None,
    };
    match config {
        Ok(config) => {
            // Said: as written; unsaid: null for these, absent for the optional ones.
            let said = |key: &str| config.get(key).cloned();
            let text = |key: &str| Some(said(key).unwrap_or(Value::Null));
            if let Some(name) = said("name") {
                summary.name = name;
            }
            summary.description = Some(said("description").unwrap_or_else(|| json!("")));
            summary.tier = text("tier");
            summary.runtime = text("runtime");
            summary.model = text("model");
            summary.models = said("models");
            summary.required_env = said("required_env");
            summary.provision_timeout_seconds = said("provision_timeout_seconds");
        }
        Err(error) => summary.error = Some(error),
    }
    summary
}
