//! `/workspaces`: the views of a workspace, the create and PATCH bodies, and the answers
//! of its actions.

use std::collections::BTreeMap;

use hatchery_core::{BillingMode, WorkspaceStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Patch;
use crate::wire::serialize_go_number;

/// A workspace in brief: what a peer sees of it (`GET /registry/:id/peers`), and the
/// start of every fuller view.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceBrief {
    /// The workspace's id (a lower-case UUID).
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its role, null when none.
    pub role: Option<String>,
    /// 1 sandboxed, 2 standard, 3 privileged, 4 full host.
    pub tier: i64,
    /// Where it is in its life.
    pub status: WorkspaceStatus,
    /// The agent's registered URL, `""` when none.
    pub url: String,
    /// The parent workspace, null for a root.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub parent_id: Option<String>,
    /// The agent card the agent registered, as it sent it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub agent_card: Value,
    /// Tasks in flight, as the agent last reported.
    pub active_tasks: i64,
}

/// What every full view of a workspace has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceCommon {
    // Not a doc comment: on a flattened field it would become the schema's description.
    #[allow(
        missing_docs,
        reason = "flattened: its fields are documented where declared"
    )]
    #[serde(flatten)]
    pub brief: WorkspaceBrief,
    /// How many tasks the agent may run at once.
    pub max_concurrent_tasks: i64,
    /// The error rate the agent last reported (0–1).
    #[serde(serialize_with = "serialize_go_number")]
    pub last_error_rate: f64,
    /// Seconds since the agent started, as it last reported.
    pub uptime_seconds: i64,
    /// The agent runtime, `""` when none was named.
    pub runtime: String,
    /// Canvas position.
    #[serde(serialize_with = "serialize_go_number")]
    pub x: f64,
    /// Canvas position.
    #[serde(serialize_with = "serialize_go_number")]
    pub y: f64,
    /// Whether the canvas shows its children folded.
    pub collapsed: bool,
    /// The model id, `""` when none was named.
    pub model: String,
    /// The provider stamped into its config; null when the registry does not know the
    /// runtime/model (pass-through) or the create was refused.
    pub provider: Option<String>,
    /// How the provider was obtained: `explicit`, `derived:<rule>` (`derived:exact_model`,
    /// …) or `passthrough:<reason>` (`passthrough:no_match`, …).
    pub provider_source: String,
    /// Who pays for its model calls: `platform` or `byok`; null with no provider.
    pub llm_billing_mode: Option<String>,
    /// The registry snapshot the decision was made with.
    pub registry_hash: String,
    /// `none`, `read_only` or `read_write`.
    pub workspace_access: String,
    /// Why it is `failed`, when it is.
    pub failure_reason: Option<String>,
    /// Its agent's last register or heartbeat.
    pub last_seen_at: Option<String>,
    /// When it was created.
    pub created_at: String,
}

/// An element of `GET /workspaces`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceFull {
    // Not a doc comment: on a flattened field it would become the schema's description.
    #[allow(
        missing_docs,
        reason = "flattened: its fields are documented where declared"
    )]
    #[serde(flatten)]
    pub common: WorkspaceCommon,
    /// An example error from the agent's last heartbeat.
    pub last_sample_error: String,
    /// What the agent works on, `""` when idle.
    pub current_task: String,
    /// The host directory mounted into it, if any.
    pub workspace_dir: Option<String>,
    /// Monthly budget in cents, null for none.
    pub budget_limit: Option<i64>,
    /// Cents spent this month, as the agent last reported.
    pub monthly_spend: i64,
}

/// `GET /workspaces/:id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceSingle {
    // Not a doc comment: on a flattened field it would become the schema's description.
    #[allow(
        missing_docs,
        reason = "flattened: its fields are documented where declared"
    )]
    #[serde(flatten)]
    pub common: WorkspaceCommon,
    /// The agent's last outbound call.
    pub last_outbound_at: Option<String>,
}

/// The body of `POST /workspaces`. Unknown fields are ignored; wrong types are refused.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateWorkspace {
    /// Required: non-empty, at most 255 bytes, no control characters and none of
    /// `{ } [ ] | > * & !` (`hatchery_core::check_text_fields` holds the rules).
    #[cfg_attr(feature = "openapi", schema(required, value_type = String, min_length = 1, max_length = 255, pattern = "^[^{}\\[\\]|>*&!\\u0000-\\u001f\\u007f-\\u009f]*$"))]
    pub name: Option<String>,
    /// Free text, at most 1000 bytes, none of the characters a name may not have; `""` is
    /// stored as null.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 1000,
            pattern = "^[^{}\\[\\]|>*&!\\u0000-\\u001f\\u007f-\\u009f]*$"
        )
    )]
    pub role: Option<String>,
    /// A template directory name (templates arrive with org import).
    pub template: Option<String>,
    /// 1–4; omitted or 0 means the default tier.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 4))]
    pub tier: Option<i64>,
    /// The model id, at most 100 bytes.
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub model: Option<String>,
    /// The runtime, at most 100 bytes. None: nothing is launched, and the workspace waits
    /// in `provisioning` for an agent to register.
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub runtime: Option<String>,
    /// An agent hatchery does not start.
    pub external: Option<bool>,
    /// The external agent's URL (the register URL rules apply).
    pub url: Option<String>,
    /// A host directory to mount: absolute, no `..`, no system path.
    pub workspace_dir: Option<String>,
    /// `none`, `read_only` or `read_write` (the last two need `workspace_dir`).
    pub workspace_access: Option<String>,
    /// The parent workspace (must exist and not be removed).
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub parent_id: Option<String>,
    /// Monthly budget in cents.
    pub budget_limit: Option<i64>,
    /// The workspace's own secrets, saved in the same transaction.
    pub secrets: Option<BTreeMap<String, String>>,
    /// ≤ 0 means 1.
    pub max_concurrent_tasks: Option<i64>,
    /// Canvas position.
    pub canvas: Option<Canvas>,
    /// An explicit provider (validated against the registry, never overridden).
    pub provider: Option<String>,
    /// An explicit billing mode, `platform` or `byok` (must agree with the provider).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^(platform|byok)$"))]
    pub llm_billing_mode: Option<BillingMode>,
}

/// A canvas position.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Canvas {
    /// Horizontal.
    #[serde(default)]
    pub x: f64,
    /// Vertical.
    #[serde(default)]
    pub y: f64,
}

/// `POST /workspaces`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateAnswer {
    /// The new workspace.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub id: String,
    /// `provisioning`, or for an external agent `online` (with a URL) or `awaiting_agent`.
    pub status: WorkspaceStatus,
    /// `workspace:<id>`.
    pub awareness_namespace: String,
    /// `none`, `read_only` or `read_write`.
    pub workspace_access: String,
    /// The provider stamped into its config; null for a pass-through.
    pub provider: Option<String>,
    /// How the provider was obtained.
    pub provider_source: String,
    /// `platform` or `byok`; null with no provider.
    pub llm_billing_mode: Option<String>,
    /// The registry snapshot that decided.
    pub registry_hash: String,
    /// Present (true) for an external agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
    /// For an external agent without a URL: how it joins (its token is shown only here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
}

/// What an external agent needs to join.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Connection {
    /// The workspace.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub workspace_id: String,
    /// This server, as the request reached it.
    pub platform_url: String,
    /// The agent's token; shown once.
    pub auth_token: String,
    /// Where to register.
    pub registry_endpoint: String,
    /// Where to beat.
    pub heartbeat_endpoint: String,
    /// A `curl` command that registers.
    pub curl_register_template: String,
    /// The same, in Python.
    pub python_snippet: String,
}

/// The body of `PATCH /workspaces/:id`: any of these; others are ignored. A key left out
/// keeps its value; where null is allowed it clears it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateWorkspace {
    /// Non-empty, at most 255 bytes, no newlines or `{ } [ ] | > * & !`.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub name: Patch<String>,
    /// At most 1000 bytes; `""` or null clears it.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub role: Patch<String>,
    /// 1–4.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub tier: Patch<i64>,
    /// The new parent (live, not the workspace or a descendant); `""` or null makes it a root.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub parent_id: Patch<String>,
    /// Whether the canvas folds its children.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub collapsed: Patch<bool>,
    /// A new runtime: the provider is derived again and the config regenerated, with the
    /// same refusals as a create.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub runtime: Patch<String>,
    /// A host directory (absolute, no `..`, no system path), or null; needs a restart.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub workspace_dir: Patch<String>,
    /// Canvas position; applied only together with `y`.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub x: Patch<f64>,
    /// Canvas position; applied only together with `x`.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub y: Patch<f64>,
}

impl UpdateWorkspace {
    /// A field of this body by its name, with what a value of it must be, as a refusal
    /// says it (`tier must be an integer`); `None` for a key this body does not have.
    #[must_use]
    pub fn field_type(field: &str) -> Option<(&'static str, &'static str)> {
        const FIELDS: [(&str, &str); 9] = [
            ("name", "a string"),
            ("role", "a string or null"),
            ("tier", "an integer"),
            ("parent_id", "a string or null"),
            ("collapsed", "a boolean"),
            ("runtime", "a string"),
            ("workspace_dir", "a string or null"),
            ("x", "a number"),
            ("y", "a number"),
        ];
        FIELDS.into_iter().find(|(name, _)| *name == field)
    }
}

/// `PATCH /workspaces/:id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateAnswer {
    /// `updated`.
    pub status: String,
    /// Present (true) when the change takes effect only after a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs_restart: Option<bool>,
}

/// `DELETE /workspaces/:id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeleteAnswer {
    /// `removed`, or `purged` with `purge=true`.
    pub status: String,
    /// How many descendants went with it.
    pub cascade_deleted: usize,
}

/// The 409 of a delete that would take live children along.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfirmationRequired {
    /// `confirmation_required`.
    pub status: String,
    /// What to do.
    pub message: String,
    /// The live children.
    pub children: Vec<ChildRef>,
    /// How many.
    pub children_count: usize,
    /// `confirmation_required`.
    pub code: String,
}

/// A child workspace, by id and name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChildRef {
    /// Its id.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub id: String,
    /// Its name.
    pub name: String,
}

/// `GET /workspaces/:id/config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigAnswer {
    /// The workspace.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub workspace_id: String,
    /// Each generated file's content by its path (`config.yaml`, with the provider
    /// stamped). Keys never appear here: they reach the agent as environment variables.
    pub files: BTreeMap<String, String>,
}

/// `GET /workspaces/:id/derivation`: the provider decision recorded when the workspace's
/// config was generated. A workspace refused before any decision has only the ids.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceDerivation {
    /// The workspace.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub workspace_id: String,
    /// The registry snapshot that decided.
    pub registry_hash: String,
    /// The provider stamped into its config.
    pub provider: Option<String>,
    /// How it was obtained.
    pub provider_source: Option<String>,
    /// `platform` or `byok`.
    pub llm_billing_mode: Option<String>,
    /// The provider the create named, if it named one.
    pub explicit_provider: Option<String>,
    /// The registry's trace: the outcome and the rules tried (`steps`).
    pub explain: Option<Value>,
}

/// `GET /workspaces/:id/state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateAnswer {
    /// The workspace.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub workspace_id: String,
    /// Its status; absent for one that never existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkspaceStatus>,
    /// Whether it is paused; absent when it is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// True when it is removed or never existed: its agent should stop.
    pub deleted: bool,
}

/// `POST /workspaces/:id/restart`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestartAnswer {
    /// `provisioning`.
    pub status: WorkspaceStatus,
    /// Where its config is read.
    pub config_dir: String,
    /// Whether the agent's session was reset (never, yet).
    pub reset_session: bool,
}

/// `POST /workspaces/:id/pause`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PauseAnswer {
    /// `paused`.
    pub status: WorkspaceStatus,
    /// How many workspaces were paused (it and its descendants).
    pub paused_count: usize,
}

/// `POST /workspaces/:id/resume`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResumeAnswer {
    /// `provisioning`.
    pub status: WorkspaceStatus,
    /// How many workspaces start again (it and its paused descendants).
    pub resumed_count: usize,
}
