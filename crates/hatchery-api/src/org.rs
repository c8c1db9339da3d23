//! `/org/import`, `/org/templates` and `/templates`: the import's body and answers (the
//! plan of a dry run or a refusal, the workspaces written), and the templates of the
//! server's templates directory.

use std::collections::BTreeMap;

use hatchery_core::WorkspaceStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most files an import may send with an inline template (`files`).
pub const MAX_SENT_FILES: usize = 1000;

/// The plan the planner makes (hatchery-core's): a dry run answers it, a refusal carries it.
pub use hatchery_core::org::{Plan, PlannedNode};

/// The body of `POST /org/import`: `dir` or `template`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportBody {
    /// An org template directory on the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// An inline template: an object, or its YAML as a string.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Value>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    /// The files an inline template's nodes name (`*_file`, `files_dir`), by their path
    /// relative to the template: what `hatchery org import DIR` sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<BTreeMap<String, String>>,
    /// Overrides only the missing-environment refusal.
    #[serde(default)]
    pub force: bool,
}

/// A dry run's answer: the plan, node by node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DryRunAnswer {
    // Not a doc comment: on a flattened field it would become the schema's description.
    #[allow(
        missing_docs,
        reason = "flattened: its fields are documented where declared"
    )]
    #[cfg_attr(feature = "openapi", schema(inline))]
    #[serde(flatten)]
    pub plan: Plan,
    /// Always true.
    pub dry_run: bool,
    /// Whether every node could be created as it is.
    pub ok: bool,
}

/// An import's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportAnswer {
    /// The org's name.
    pub org: String,
    /// How many workspaces were written.
    pub count: usize,
    /// Each, parents first.
    pub workspaces: Vec<ImportedView>,
}

/// A workspace an import wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportedView {
    /// Its new id.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its tier.
    pub tier: i64,
    /// `provisioning`, `online`/`awaiting_agent` (external), or `failed`.
    pub status: WorkspaceStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The `plan` of a refused import (`org_import_refused`, 422): the plan, and, when a
/// strict import found nodes that failed only when built, which and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefusedPlan {
    // Not a doc comment, as on `DryRunAnswer::plan`.
    #[allow(
        missing_docs,
        reason = "flattened: its fields are documented where declared"
    )]
    #[serde(flatten)]
    pub plan: Plan,
    /// The nodes that failed when built (strict imports only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Vec<FailedNode>>,
}

/// A node a strict import found failing when built.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct FailedNode {
    pub error: String,
    pub name: String,
}

/// An org template of the templates directory, as `GET /org/templates` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateSummary {
    /// Its name in the directory (what an import's `dir` names).
    pub dir: String,
    /// The org's name.
    pub name: String,
    /// Its `description`; `""` when it has none.
    pub description: String,
    /// How many workspaces it creates.
    pub workspaces: usize,
    /// Required environment (names, or `one of A, B`).
    pub required_env: Vec<String>,
    /// Environment it recommends, spelled as `required_env` is; an import goes ahead
    /// without it.
    pub recommended_env: Vec<String>,
    /// Whether the global secrets meet every requirement.
    pub required_env_satisfied: bool,
    /// Why it cannot be read, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

// The fields are declared in alphabetical order: before this type the server built the
// summary with `json!`, whose objects sort their keys, and the bytes stay as they were.
// What comes from `config.yaml` is kept as it is written there (a `Value`): the listing
// shows a template whatever its config says.

/// A workspace template of the templates directory (`GET /templates`), summed up from its
/// `config.yaml`. One whose `config.yaml` does not read has only its id, name, skills and
/// `error`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceTemplateView {
    /// What it is for.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Value>,
    /// Why its `config.yaml` could not be read, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its directory's name.
    pub id: String,
    /// Its model, as its `config.yaml` writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Value>,
    /// The models it offers, its required environment and its provisioning deadline,
    /// when its `config.yaml` says them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Value>,
    /// Its name (the directory's when it names none).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: Value,
    /// How long its provisioning may take, when its `config.yaml` says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision_timeout_seconds: Option<Value>,
    /// Its required environment, when its `config.yaml` says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_env: Option<Value>,
    /// Its runtime, as its `config.yaml` writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Value>,
    /// How many skills it has.
    pub skill_count: usize,
    /// Its skills (the folders of `skills/`).
    pub skills: Vec<String>,
    /// Its tier, as its `config.yaml` writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Value>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{FailedNode, Plan, RefusedPlan, WorkspaceTemplateView};

    /// A workspace template's bytes are the ones `json!` made before this type: keys in
    /// order, `null` where its config says nothing, absent what only some have.
    #[test]
    fn a_workspace_template_spells_its_keys_in_order() {
        let read = WorkspaceTemplateView {
            description: Some(json!("")),
            error: None,
            id: "coder".to_owned(),
            model: Some(Value::Null),
            models: Some(json!(["a", "b"])),
            name: json!("Coder"),
            provision_timeout_seconds: None,
            required_env: Some(json!(["KEY"])),
            runtime: Some(json!("claude-code")),
            skill_count: 1,
            skills: vec!["review".to_owned()],
            tier: Some(json!(2)),
        };
        let before = json!({
            "id": "coder", "skills": ["review"], "skill_count": 1, "name": "Coder",
            "description": "", "tier": 2, "runtime": "claude-code", "model": null,
            "models": ["a", "b"], "required_env": ["KEY"],
        });
        assert_eq!(serde_json::to_string(&read).unwrap(), before.to_string());
        let unread = WorkspaceTemplateView {
            description: None,
            error: Some("bad yaml".to_owned()),
            id: "broken".to_owned(),
            model: None,
            models: None,
            name: json!("broken"),
            provision_timeout_seconds: None,
            required_env: None,
            runtime: None,
            skill_count: 0,
            skills: Vec::new(),
            tier: None,
        };
        let before = json!({
            "id": "broken", "skills": [], "skill_count": 0, "name": "broken",
            "error": "bad yaml",
        });
        assert_eq!(serde_json::to_string(&unread).unwrap(), before.to_string());
    }

    /// A refusal's plan is the plan, with `failed` added only by a strict import.
    #[test]
    fn a_refused_plan_is_the_plan_with_what_failed() {
        let plan = Plan {
            org: "team".to_owned(),
            nodes: Vec::new(),
            missing_env: Vec::new(),
            problems: vec!["no workspaces".to_owned()],
        };
        let refused = RefusedPlan {
            plan: plan.clone(),
            failed: None,
        };
        assert_eq!(
            serde_json::to_value(&refused).unwrap(),
            serde_json::to_value(&plan).unwrap()
        );
        let refused = RefusedPlan {
            plan: plan.clone(),
            failed: Some(vec![FailedNode {
                error: "bad".to_owned(),
                name: "lead".to_owned(),
            }]),
        };
        let mut before = serde_json::to_value(&plan).unwrap();
        before["failed"] = json!([{"name": "lead", "error": "bad"}]);
        assert_eq!(serde_json::to_value(&refused).unwrap(), before);
    }
}
