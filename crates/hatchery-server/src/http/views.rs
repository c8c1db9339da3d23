//! Wire shapes: the JSON clients see, field for field as the platform API has them. The
//! handlers serialize these types, and the OpenAPI document is generated from them, so the
//! two cannot drift apart.

pub(crate) use crate::app::stored_json;
pub(crate) use crate::wire::{time, timestamp};
pub(crate) use hatchery_api::registry::ExplainAnswer;
use hatchery_api::workspaces::WorkspaceCommon;
pub(crate) use hatchery_api::workspaces::{
    WorkspaceBrief, WorkspaceDerivation, WorkspaceFull, WorkspaceSingle,
};
use hatchery_store::WorkspaceRow;
use serde::Serialize;
use utoipa::ToSchema;

// The views are hatchery-api's types; the conversions from the store's rows live here, as
// functions (the api crate knows no store, and neither crate may `impl From` for the other).

/// A workspace in brief, as a peer sees it.
pub(crate) fn workspace_brief(row: &WorkspaceRow) -> WorkspaceBrief {
    WorkspaceBrief {
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

fn workspace_common(row: &WorkspaceRow) -> WorkspaceCommon {
    WorkspaceCommon {
        brief: workspace_brief(row),
        max_concurrent_tasks: row.max_concurrent_tasks,
        last_error_rate: row.last_error_rate,
        uptime_seconds: row.uptime_seconds,
        runtime: row.runtime.clone(),
        x: row.x,
        y: row.y,
        collapsed: row.collapsed,
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

/// An element of `GET /workspaces`.
pub(crate) fn workspace_full(row: &WorkspaceRow) -> WorkspaceFull {
    WorkspaceFull {
        common: workspace_common(row),
        last_sample_error: row.last_sample_error.clone(),
        current_task: row.current_task.clone(),
        workspace_dir: row.workspace_dir.clone(),
        budget_limit: row.budget_limit,
        monthly_spend: row.monthly_spend,
    }
}

/// `GET /workspaces/:id`.
pub(crate) fn workspace_single(row: &WorkspaceRow) -> WorkspaceSingle {
    WorkspaceSingle {
        common: workspace_common(row),
        last_outbound_at: row.last_outbound_at.map(timestamp),
    }
}

/// An answer that is only a status word (`{"status":"ok"}`, `{"status":"updated"}`, …).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatusAnswer {
    /// What was done.
    pub status: &'static str,
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
