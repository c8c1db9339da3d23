//! `/workspaces/:id/activity`: report and list what an agent did.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gate::WorkspaceCaller;
use super::views::{Paged, StatusAnswer, timestamp};
use super::workspaces::WorkspaceId;
use super::{AppState, Query, json_body};
use crate::app::activity::{ActivityQuery, ReportActivity};
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, report))
}

/// An activity row.
#[derive(Debug, Serialize, ToSchema)]
struct ActivityView {
    /// Its id.
    id: String,
    /// The workspace that reported it.
    #[schema(format = Uuid)]
    workspace_id: String,
    /// `a2a_send`, `a2a_receive`, `task_update`, `agent_log`, …
    activity_type: String,
    /// The reporting workspace; null for the canvas.
    source_id: Option<String>,
    /// The workspace called, if any.
    target_id: Option<String>,
    /// The A2A method or tool.
    method: Option<String>,
    /// One line for people.
    summary: Option<String>,
    /// How long it took.
    duration_ms: Option<i64>,
    /// `ok`, `error`, `timeout`, …
    status: String,
    /// What went wrong.
    error_detail: Option<String>,
    /// When it was reported, RFC 3339 in UTC.
    created_at: String,
    /// The request, when one was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body: Option<Value>,
    /// The response, when one was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    response_body: Option<Value>,
}

/// An agent reports what it did; one row, for this workspace.
#[utoipa::path(post, operation_id = "activity_report", path = "/workspaces/{id}/activity", tag = "activity",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    request_body = ReportActivity,
    responses(
        (status = 200, body = StatusAnswer),
        (status = 400, description = "`invalid request body` (no type), `invalid activity_type, must be one of: …`, or a non-UUID `target_id`/`source_id`.", body = ErrorBody),
        (status = 403, description = "`source_id must match authenticated workspace` (`source_mismatch`).", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB, or `request_body` (`metadata`) or `response_body` is larger than 256 KiB (`payload_too_large`, with `field` and `limit_bytes`).", body = ErrorBody),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 410, description = "The workspace is removed (`workspace_removed`).", body = ErrorBody),
    ))]
async fn report(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
    body: Body,
) -> Result<Json<StatusAnswer>, ApiError> {
    let body: ReportActivity = json_body(body, "invalid request body").await?;
    state.app.workspace_live(&id).await?;
    state.app.activity_report(&id, body).await?;
    Ok(Json(StatusAnswer { status: "logged" }))
}

/// The workspace's activity, newest first; a page of at most `limit` rows and 1 MiB of
/// texts and bodies (`before=` the last id continues).
#[utoipa::path(get, operation_id = "activity_list", path = "/workspaces/{id}/activity", tag = "activity",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId, ActivityQuery),
    responses(
        (status = 200, body = Vec<ActivityView>, headers(("x-hatchery-truncated" = String, description = "`true` when the page stopped at its byte budget (1 MiB of texts and bodies) before its row limit: continue with `before=` its last id."))),
        (status = 400, description = "`source must be 'canvas' or 'agent'` (`invalid_source`), or `before` is not an activity id (`invalid_cursor`).", body = ErrorBody),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    Query(query): Query<ActivityQuery>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
) -> Result<Paged<ActivityView>, ApiError> {
    let page = state.app.activity_list(&id, query).await?;
    // Bodies appear only when stored; a damaged one shows as null.
    let body = |stored: &Option<String>| {
        stored
            .as_deref()
            .map(|text| serde_json::from_str(text).unwrap_or(Value::Null))
    };
    Ok(Paged(
        page.rows
            .iter()
            .map(|row| ActivityView {
                id: row.id.clone(),
                workspace_id: row.workspace_id.clone(),
                activity_type: row.activity_type.clone(),
                source_id: row.source_id.clone(),
                target_id: row.target_id.clone(),
                method: row.method.clone(),
                summary: row.summary.clone(),
                duration_ms: row.duration_ms,
                status: row.status.clone(),
                error_detail: row.error_detail.clone(),
                created_at: timestamp(row.created_at),
                request_body: body(&row.request_body),
                response_body: body(&row.response_body),
            })
            .collect(),
        page.truncated,
    ))
}
