//! `/workspaces/:id/delegate` and `/workspaces/:id/delegations…`: a workspace hands a
//! task to a peer, and lists what it handed (see `app::delegations`). Molecule's shapes;
//! the caller is the delegating workspace with its own token (or the operator), and the
//! target must be one it may reach.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hatchery_api::delegations::{
    Delegate, DelegateAnswer, DelegateStatus, DelegationView, RecordAnswer, RecordDelegation,
    RecordStatus, UpdateAnswer, UpdateDelegation,
};
use hatchery_core::DelegationStatus;
use hatchery_store::DelegationRow;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gate::WorkspaceCaller;
use super::views::timestamp;
use super::workspaces::WorkspaceId;
use super::{AppState, Path, json_body};
use crate::app::delegations::{DelegateOutcome, preview};
use crate::app::workspaces::parse_workspace_id;
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(delegation_create))
        .routes(routes!(delegation_list))
        .routes(routes!(delegation_record))
        .routes(routes!(delegation_update))
}

/// The delegation in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(
    dead_code,
    reason = "a schema for the OpenAPI document; the handler reads the raw text"
)]
struct DelegationId {
    /// The delegation's id (`delegation_id`).
    delegation_id: String,
}

/// Hand a task to a workspace this one may reach; the control plane delivers it in the
/// background as an A2A `message/send` from this workspace (at least once: a delivery cut
/// short by a restart is made again) and keeps the answer. A repeated `idempotency_key`
/// answers the delegation it named, unless that one failed.
#[utoipa::path(post, operation_id = "delegation_create", path = "/workspaces/{id}/delegate", tag = "a2a",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId), request_body = Delegate,
    responses(
        (status = 202, body = DelegateAnswer, description = "`{\"delegation_id\", \"status\": \"delegated\", \"target_id\"}`: stored `pending`, on its way (`DELEGATION_SENT`)."),
        (status = 200, body = DelegateAnswer, description = "The delegation the idempotency key already named, with its status and `\"idempotent_hit\": true`; nothing is delivered again."),
        (status = 400, description = "`invalid delegation request` (`target_id` or `task` missing, naming it), `target_id must be a valid UUID`, or `self-delegation not permitted` (`self_delegation`).", body = ErrorBody),
        (status = 403, description = "`access denied: workspaces cannot communicate per hierarchy rules` (`not_reachable`); nothing is stored.", body = ErrorBody),
        (status = 404, description = "`workspace not found`: this workspace or the target (unknown or removed).", body = ErrorBody),
        (status = 410, description = "This workspace is removed (`workspace_removed`).", body = ErrorBody),
        (status = 413, description = "`task` larger than 256 KiB, or the body larger than 1 MiB.", body = ErrorBody),
    ))]
async fn delegation_create(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
    body: Body,
) -> Result<(StatusCode, Json<DelegateAnswer>), ApiError> {
    let request: Delegate = json_body(body, "invalid delegation request").await?;
    Ok(match state.app.delegation_create(&id, request).await? {
        DelegateOutcome::Created(row) => (
            StatusCode::ACCEPTED,
            Json(DelegateAnswer {
                delegation_id: row.delegation_id,
                status: DelegateStatus::Delegated,
                target_id: row.target_id,
                idempotent_hit: false,
            }),
        ),
        DelegateOutcome::Existing(row) => (
            StatusCode::OK,
            Json(DelegateAnswer {
                delegation_id: row.delegation_id,
                status: row.status.into(),
                target_id: row.target_id,
                idempotent_hit: true,
            }),
        ),
    })
}

/// The workspace's delegations, newest first (at most 50): those the control plane
/// delivers and those its agent recorded, each with its status and, once ended, the
/// answer's beginning or the reason it failed.
#[utoipa::path(get, operation_id = "delegation_list", path = "/workspaces/{id}/delegations", tag = "a2a",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    responses(
        (status = 200, body = Vec<DelegationView>),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
    ))]
async fn delegation_list(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
) -> Result<Json<Vec<DelegationView>>, ApiError> {
    let rows = state.app.delegation_list(&id).await?;
    Ok(Json(rows.iter().map(view).collect()))
}

/// Record a delegation the agent delivered itself (with its own A2A call): stored
/// `working` (`DELEGATION_SENT`), listed with the others, ended by `…/update`. The same
/// record again answers the same.
#[utoipa::path(post, operation_id = "delegation_record", path = "/workspaces/{id}/delegations/record", tag = "a2a",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId), request_body = RecordDelegation,
    responses(
        (status = 202, body = RecordAnswer, description = "`{\"delegation_id\", \"status\": \"recorded\"}`."),
        (status = 400, description = "`invalid request body` (`target_id`, `task` or `delegation_id` missing or malformed, naming it), or `target_id must be a valid UUID`.", body = ErrorBody),
        (status = 403, description = "`access denied: workspaces cannot communicate per hierarchy rules` (`not_reachable`); nothing is stored.", body = ErrorBody),
        (status = 404, description = "`workspace not found`: this workspace or the target.", body = ErrorBody),
        (status = 409, description = "The id is taken by another delegation of this workspace (`delegation_exists`).", body = ErrorBody),
        (status = 410, description = "This workspace is removed (`workspace_removed`).", body = ErrorBody),
        (status = 413, description = "`task` larger than 256 KiB, or the body larger than 1 MiB.", body = ErrorBody),
    ))]
async fn delegation_record(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
    body: Body,
) -> Result<(StatusCode, Json<RecordAnswer>), ApiError> {
    let request: RecordDelegation = json_body(body, "invalid request body").await?;
    let delegation_id = state.app.delegation_record(&id, request).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RecordAnswer {
            delegation_id,
            status: RecordStatus::Recorded,
        }),
    ))
}

/// Say how a delegation the agent recorded ended: `completed` (with the answer as
/// `response_preview`) or `failed` (with `error`); `DELEGATION_COMPLETE` or
/// `DELEGATION_FAILED`. The same report again changes nothing.
#[utoipa::path(post, operation_id = "delegation_update", path = "/workspaces/{id}/delegations/{delegation_id}/update", tag = "a2a",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId, DelegationId), request_body = UpdateDelegation,
    responses(
        (status = 200, body = UpdateAnswer, description = "`{\"status\", \"delegation_id\"}`."),
        (status = 400, description = "`invalid request body` (`status` missing), or `status must be 'completed' or 'failed'`.", body = ErrorBody),
        (status = 404, description = "`workspace not found`, or `delegation not found` (`delegation_not_found`).", body = ErrorBody),
        (status = 409, description = "The control plane delivers that delegation (`delegation_not_self_managed`), or it already ended otherwise (`delegation_finished`).", body = ErrorBody),
        (status = 410, description = "This workspace is removed (`workspace_removed`).", body = ErrorBody),
        (status = 413, description = "`response_preview` larger than 256 KiB, `error` larger than 4 KiB, or the body larger than 1 MiB.", body = ErrorBody),
    ))]
async fn delegation_update(
    State(state): State<AppState>,
    Path((id, delegation_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UpdateAnswer>, ApiError> {
    let id = parse_workspace_id(&id)?;
    WorkspaceCaller::check(&state, &headers, id.clone()).await?;
    let request: UpdateDelegation = json_body(body, "invalid request body").await?;
    let status = state
        .app
        .delegation_update(&id, &delegation_id, request)
        .await?;
    Ok(Json(UpdateAnswer {
        status,
        delegation_id,
    }))
}

/// A delegation as the listing shows it, in Molecule's shape (its one row per
/// delegation standing for Molecule's `delegate` and `delegate_result` rows).
fn view(row: &DelegationRow) -> DelegationView {
    let summary = match row.status {
        DelegationStatus::Pending | DelegationStatus::Working => {
            format!("Delegating to {}", row.target_id)
        }
        DelegationStatus::Completed => format!(
            "Delegation completed ({})",
            preview(row.result.as_deref().unwrap_or_default(), 80)
        ),
        DelegationStatus::Failed => "Delegation failed".to_owned(),
    };
    DelegationView {
        id: row.delegation_id.clone(),
        kind: "delegation".to_owned(),
        source_id: row.workspace_id.clone(),
        target_id: row.target_id.clone(),
        summary,
        status: row.status,
        created_at: timestamp(row.created_at),
        updated_at: timestamp(row.updated_at),
        delegation_id: row.delegation_id.clone(),
        error: row.error.clone().filter(|e| !e.is_empty()),
        response_preview: row
            .result
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| preview(r, 300)),
    }
}
