//! Wire shapes: the JSON clients see, field for field as the platform API has them. The
//! handlers serialize these types, and the OpenAPI document is generated from them, so the
//! two cannot drift apart.

pub(crate) use crate::app::stored_json;
pub(crate) use crate::wire::{go_number, time, timestamp};
use hatchery_core::WorkspaceStatus;
use hatchery_store::WorkspaceRow;
use serde::{Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's serialize_with passes a reference"
)]
fn serialize_go_number<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    go_number(*value).serialize(serializer)
}

/// A workspace in brief: what a peer sees of it (`GET /registry/:id/peers`), and the
/// start of every fuller view.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkspaceBrief {
    /// The workspace's id (a lower-case UUID).
    #[schema(format = Uuid)]
    id: String,
    /// Its name.
    name: String,
    /// Its role, null when none.
    role: Option<String>,
    /// 1 sandboxed, 2 standard, 3 privileged, 4 full host.
    tier: i64,
    /// Where it is in its life.
    status: WorkspaceStatus,
    /// The agent's registered URL, `""` when none.
    url: String,
    /// The parent workspace, null for a root.
    #[schema(format = Uuid)]
    parent_id: Option<String>,
    /// The agent card the agent registered, as it sent it.
    #[schema(value_type = Option<Object>)]
    agent_card: Value,
    /// Tasks in flight, as the agent last reported.
    active_tasks: i64,
}

impl From<&WorkspaceRow> for WorkspaceBrief {
    fn from(row: &WorkspaceRow) -> Self {
        Self {
            id: row.id.clone(),
            name: row.name.clone(),
            role: row.role.clone(),
            tier: row.tier,
            status: row.status,
            url: row.url.clone(),
            parent_id: row.parent_id.clone(),
            agent_card: stored_json(row.agent_card.as_deref()),
            active_tasks: row.active_tasks,
        }
    }
}

/// What every full view of a workspace has.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkspaceCommon {
    #[serde(flatten)]
    brief: WorkspaceBrief,
    /// How many tasks the agent may run at once.
    max_concurrent_tasks: i64,
    /// The error rate the agent last reported (0–1).
    #[serde(serialize_with = "serialize_go_number")]
    last_error_rate: f64,
    /// Seconds since the agent started, as it last reported.
    uptime_seconds: i64,
    /// The agent runtime, `""` when none was named.
    runtime: String,
    /// Canvas position.
    #[serde(serialize_with = "serialize_go_number")]
    x: f64,
    /// Canvas position.
    #[serde(serialize_with = "serialize_go_number")]
    y: f64,
    /// Whether the canvas shows its children folded.
    collapsed: bool,
    /// The model id, `""` when none was named.
    model: String,
    /// The provider stamped into its config; null when the registry does not know the
    /// runtime/model (pass-through) or the create was refused.
    provider: Option<String>,
    /// How the provider was obtained: `explicit`, `derived:<rule>` (`derived:exact_model`,
    /// …) or `passthrough:<reason>` (`passthrough:no_match`, …).
    provider_source: String,
    /// Who pays for its model calls: `platform` or `byok`; null with no provider.
    llm_billing_mode: Option<String>,
    /// The registry snapshot the decision was made with.
    registry_hash: String,
    /// `none`, `read_only` or `read_write`.
    workspace_access: String,
    /// Why it is `failed`, when it is.
    failure_reason: Option<String>,
    /// Its agent's last register or heartbeat.
    last_seen_at: Option<String>,
    /// When it was created.
    created_at: String,
}

impl WorkspaceCommon {
    fn of(row: &WorkspaceRow) -> Self {
        Self {
            brief: WorkspaceBrief::from(row),
            max_concurrent_tasks: row.max_concurrent_tasks,
            last_error_rate: row.last_error_rate,
            uptime_seconds: row.uptime_seconds,
            runtime: row.runtime.clone(),
            x: row.x,
            y: row.y,
            collapsed: row.collapsed != 0,
            model: row.model.clone(),
            provider: row.provider.clone(),
            provider_source: row.provider_source.clone(),
            llm_billing_mode: row.llm_billing_mode.clone(),
            registry_hash: row.registry_hash.clone(),
            workspace_access: row.workspace_access.clone(),
            failure_reason: row.failure_reason.clone(),
            last_seen_at: row.last_seen_at.map(timestamp),
            created_at: timestamp(row.created_at),
        }
    }
}

/// An element of `GET /workspaces`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkspaceFull {
    #[serde(flatten)]
    common: WorkspaceCommon,
    /// An example error from the agent's last heartbeat.
    last_sample_error: String,
    /// What the agent works on, `""` when idle.
    current_task: String,
    /// The host directory mounted into it, if any.
    workspace_dir: Option<String>,
    /// Monthly budget in cents, null for none.
    budget_limit: Option<i64>,
    /// Cents spent this month, as the agent last reported.
    monthly_spend: i64,
}

impl From<&WorkspaceRow> for WorkspaceFull {
    fn from(row: &WorkspaceRow) -> Self {
        Self {
            common: WorkspaceCommon::of(row),
            last_sample_error: row.last_sample_error.clone(),
            current_task: row.current_task.clone(),
            workspace_dir: row.workspace_dir.clone(),
            budget_limit: row.budget_limit,
            monthly_spend: row.monthly_spend,
        }
    }
}

/// `GET /workspaces/:id`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkspaceSingle {
    #[serde(flatten)]
    common: WorkspaceCommon,
    /// The agent's last outbound call.
    last_outbound_at: Option<String>,
}

impl From<&WorkspaceRow> for WorkspaceSingle {
    fn from(row: &WorkspaceRow) -> Self {
        Self {
            common: WorkspaceCommon::of(row),
            last_outbound_at: row.last_outbound_at.map(timestamp),
        }
    }
}

/// An answer that is only a status word (`{"status":"ok"}`, `{"status":"updated"}`, …).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatusAnswer {
    /// What was done.
    pub status: &'static str,
}

/// `GET /admin/registry/explain`: what the live registry derives for a runtime and model,
/// in the registry's own words, with the trace of every rule tried.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "a schema for the OpenAPI document; never constructed"
)]
pub(crate) struct ExplainAnswer {
    /// The runtime asked about.
    runtime: String,
    /// The model asked about.
    model: String,
    /// `derived`, `passthrough` or `error`.
    #[schema(pattern = "^(derived|passthrough|error)$")]
    outcome: String,
    /// The provider decided on.
    provider: Option<String>,
    /// `platform` or `byok`.
    billing: Option<String>,
    /// Which rule decided (`exact_model`, `prefix_match`, …).
    via: Option<String>,
    /// For a pass-through: why the registry has no say (`unknown_runtime`, `empty_model`,
    /// `no_match`).
    reason: Option<String>,
    /// For an error: its kind (`ambiguous`, …).
    kind: Option<String>,
    /// For an ambiguous model: every provider that matches.
    candidates: Option<Vec<String>>,
    /// For an error: what went wrong, naming runtime and model.
    message: Option<String>,
    /// The registry snapshot that decided.
    registry_hash: String,
    /// The rules tried, in order.
    explain: Vec<Value>,
}

/// `GET /workspaces/:id/derivation`: the provider decision recorded when the workspace's
/// config was generated. A workspace refused before any decision has only the ids.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "a schema for the OpenAPI document; never constructed"
)]
pub(crate) struct WorkspaceDerivation {
    /// The workspace.
    #[schema(format = Uuid)]
    workspace_id: String,
    /// The registry snapshot that decided.
    registry_hash: String,
    /// The provider stamped into its config.
    provider: Option<String>,
    /// How it was obtained.
    provider_source: Option<String>,
    /// `platform` or `byok`.
    llm_billing_mode: Option<String>,
    /// The provider the create named, if it named one.
    explicit_provider: Option<String>,
    /// The registry's trace: the outcome and the rules tried (`steps`).
    explain: Option<Value>,
}

/// The header a listing page carries when it stopped at its byte budget
/// (`PAGE_BUDGET_BYTES`) before its row limit: more may follow its last row.
pub(crate) const TRUNCATED_HEADER: &str = "x-hatchery-truncated";

/// A page of a listing: the JSON array, with [`TRUNCATED_HEADER`]`: true` when the page
/// stopped at its byte budget. A page that did not stop there answers exactly as before.
pub(crate) struct Paged<T>(pub Vec<T>, pub bool);

impl<T: Serialize> axum::response::IntoResponse for Paged<T> {
    fn into_response(self) -> axum::response::Response {
        let Self(rows, truncated) = self;
        let mut response = axum::Json(rows).into_response();
        if truncated {
            response.headers_mut().insert(
                TRUNCATED_HEADER,
                axum::http::HeaderValue::from_static("true"),
            );
        }
        response
    }
}
