//! `/workspaces`: create, list, read, update, remove; the generated config and the
//! derivation behind it.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hatchery_api::workspaces::{
    ConfigAnswer, ConfirmationRequired, Connection, CreateAnswer, CreateWorkspace, DeleteAnswer,
    PauseAnswer, RestartAnswer, ResumeAnswer, StateAnswer, UpdateAnswer, UpdateWorkspace,
};
use hatchery_core::WorkspaceStatus;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gate::{Admin, AgentCaller, WorkspaceCaller, WorkspacePath};
use super::views::{
    WorkspaceDerivation, WorkspaceFull, WorkspaceSingle, workspace_full, workspace_single,
};
use super::{AppState, Path, Query, json_body};
use crate::app::workspaces::parse_workspace_id;
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(config))
        .routes(routes!(derivation))
        .routes(routes!(state_of))
        .routes(routes!(logs))
        .routes(routes!(restart))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// The workspace in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(
    dead_code,
    reason = "a schema for the OpenAPI document; handlers read the raw text"
)]
pub(super) struct WorkspaceId {
    /// The workspace's id.
    #[param(format = Uuid)]
    id: String,
}

/// Create a workspace: validate it, derive its provider, decide who pays, generate its
/// config and queue its start, all in one transaction. A runtime/model the registry knows
/// is never created without its provider: such a refusal is a 422 and nothing is written.
#[utoipa::path(post, operation_id = "workspace_create", path = "/workspaces", tag = "workspaces", security(("admin" = [])),
    request_body = CreateWorkspace,
    responses(
        (status = 201, body = CreateAnswer),
        (status = 400, description = "`invalid workspace payload` (bad JSON, no name), `invalid workspace fields`, `invalid workspace directory`, `invalid workspace access`, `invalid template`, or a bad `parent_id`, `url` or secret name; `field` names the culprit.", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB, or an external workspace's `url` longer than 2 KiB (`payload_too_large`, with `field` and `limit_bytes`).", body = ErrorBody),
        (status = 422, description = "The provider decision failed closed: `provider_derivation_failed` (with `candidates` when ambiguous), `provider_not_allowed`, `byok_key_missing` (with `variables`), `platform_key_missing`, `billing_mode_conflict`.", body = ErrorBody),
        (status = 503, description = "No registry snapshot is in force (`registry_unavailable`), or secrets were sent to a server without a secrets key (`secrets_key_missing`).", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<CreateAnswer>), ApiError> {
    let request: CreateWorkspace = json_body(body, "invalid workspace payload").await?;
    let created = state.app.workspace_create(request).await?;
    state.app.metrics.workspace_created();
    let connection = created
        .external_token
        .as_deref()
        .map(|token| connection(&headers, &created.id, token));
    let answer = CreateAnswer {
        awareness_namespace: format!("workspace:{}", created.id),
        status: created.status,
        workspace_access: created.workspace_access.to_owned(),
        provider: created.config.provider,
        provider_source: created.config.source.as_str().to_owned(),
        llm_billing_mode: created
            .config
            .billing
            .map(|billing| billing.as_str().to_owned()),
        registry_hash: created.config.registry_hash,
        external: (created.status != WorkspaceStatus::Provisioning).then_some(true),
        connection,
        id: created.id,
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

/// What an external agent needs to join: where to register and beat, with its token.
fn connection(headers: &HeaderMap, id: &str, token: &str) -> Connection {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let platform_url = format!("http://{host}");
    let registry_endpoint = format!("{platform_url}/registry/register");
    let heartbeat_endpoint = format!("{platform_url}/registry/heartbeat");
    Connection {
        workspace_id: id.to_owned(),
        platform_url,
        auth_token: token.to_owned(),
        curl_register_template: format!(
            "curl -s -X POST {registry_endpoint} -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"id\":\"{id}\",\"url\":\"<YOUR_AGENT_URL>\",\"agent_card\":{{\"name\":\"<NAME>\"}}}}'"
        ),
        python_snippet: format!(
            "import requests\nH = {{\"Authorization\": \"Bearer {token}\"}}\nrequests.post(\"{registry_endpoint}\", headers=H, json={{\"id\": \"{id}\", \"url\": \"<YOUR_AGENT_URL>\", \"agent_card\": {{\"name\": \"<NAME>\"}}}}).raise_for_status()\n# then every 30 s:\nrequests.post(\"{heartbeat_endpoint}\", headers=H, json={{\"workspace_id\": \"{id}\"}}).raise_for_status()\n"
        ),
        registry_endpoint,
        heartbeat_endpoint,
    }
}

/// Every workspace that is not removed, oldest first.
#[utoipa::path(get, operation_id = "workspace_list", path = "/workspaces", tag = "workspaces", security(("admin" = [])),
    responses((status = 200, body = Vec<WorkspaceFull>)))]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<WorkspaceFull>>, ApiError> {
    let rows = state.app.workspace_list().await?;
    Ok(Json(rows.iter().map(workspace_full).collect()))
}

/// One workspace; a removed one is still shown (`"status":"removed"`).
#[utoipa::path(get, operation_id = "workspace_get", path = "/workspaces/{id}", tag = "workspaces",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    responses(
        (status = 200, body = WorkspaceSingle),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
) -> Result<Json<WorkspaceSingle>, ApiError> {
    let row = state.app.workspace_get(&id).await?;
    Ok(Json(workspace_single(&row)))
}

/// Change a workspace's name, role, tier, parent, canvas place, runtime or directory.
#[utoipa::path(patch, operation_id = "workspace_update", path = "/workspaces/{id}", tag = "workspaces",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    request_body = UpdateWorkspace,
    responses(
        (status = 200, body = UpdateAnswer),
        (status = 400, description = "A field of the wrong type or value; `field` names it (`invalid request body`, or the field's own message).", body = ErrorBody),
        (status = 403, description = "A workspace's own token may change only `name`, `role`, `collapsed`, `x` and `y`; any other field is the operator's (`operator_only_field`).", body = ErrorBody),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 410, description = "The workspace is removed (`workspace_removed`).", body = ErrorBody),
        (status = 422, description = "A new runtime's provider decision failed closed, as for a create.", body = ErrorBody),
        (status = 503, description = "No registry snapshot is in force (`registry_unavailable`).", body = ErrorBody),
    ))]
async fn update(
    State(state): State<AppState>,
    WorkspaceCaller {
        id,
        credential: caller,
    }: WorkspaceCaller,
    body: Body,
) -> Result<Json<UpdateAnswer>, ApiError> {
    let body: Map<String, Value> = json_body(body, "invalid request body").await?;
    let by_operator = state.app.is_operator(&caller);
    let needs_restart = state.app.workspace_update(&id, body, by_operator).await?;
    Ok(Json(UpdateAnswer {
        status: "updated".to_owned(),
        needs_restart: needs_restart.then_some(true),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// `true` removes the workspace's live children too.
    confirm: Option<String>,
    /// `true` also deletes the rows for good.
    purge: Option<String>,
}

/// Remove a workspace (status `removed`, tokens revoked, agent stopped); with
/// `confirm=true` its descendants too. Removing it again answers the same.
#[utoipa::path(delete, operation_id = "workspace_delete", path = "/workspaces/{id}", tag = "workspaces", security(("admin" = [])),
    params(WorkspaceId, DeleteQuery),
    responses(
        (status = 200, body = DeleteAnswer),
        (status = 404, description = "`workspace not found` (it never existed).", body = ErrorBody),
        (status = 409, description = "It has live children and `confirm` is not `true`.", body = ConfirmationRequired),
    ))]
async fn remove(
    State(state): State<AppState>,
    WorkspacePath(id): WorkspacePath,
    Query(query): Query<DeleteQuery>,
    _admin: Admin,
) -> Result<Json<DeleteAnswer>, ApiError> {
    let confirm = query.confirm.as_deref() == Some("true");
    let purge = query.purge.as_deref() == Some("true");
    let cascade_deleted = state.app.workspace_delete(&id, confirm, purge).await?;
    Ok(Json(DeleteAnswer {
        status: if purge { "purged" } else { "removed" }.to_owned(),
        cascade_deleted,
    }))
}

/// The config files generated for the workspace.
#[utoipa::path(get, operation_id = "workspace_config", path = "/workspaces/{id}/config", tag = "workspaces",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    responses(
        (status = 200, body = ConfigAnswer),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
    ))]
async fn config(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
) -> Result<Json<ConfigAnswer>, ApiError> {
    let files = state.app.workspace_files(&id).await?;
    Ok(Json(ConfigAnswer {
        workspace_id: id,
        files: files.into_iter().map(|f| (f.path, f.content)).collect(),
    }))
}

/// How the workspace's provider was decided: the registry's trace, recorded when its
/// config was generated.
#[utoipa::path(get, operation_id = "workspace_derivation", path = "/workspaces/{id}/derivation", tag = "workspaces",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    responses(
        (status = 200, body = WorkspaceDerivation),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
    ))]
async fn derivation(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
) -> Result<Json<Value>, ApiError> {
    let row = state.app.workspace_get(&id).await?;
    let mut body: Value = serde_json::from_str(&row.derivation)
        .map_err(|e| ApiError::internal("failed to read derivation", e))?;
    body["workspace_id"] = json!(id);
    body["registry_hash"] = json!(row.registry_hash);
    Ok(Json(body))
}

/// What an agent polls to learn whether it should run. A removed or unknown workspace is
/// a 404 with `deleted: true`, said before any credential is checked: a removed
/// workspace's tokens are revoked, and its agent must still learn to stop.
#[utoipa::path(get, operation_id = "workspace_state", path = "/workspaces/{id}/state", tag = "workspaces",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    responses(
        (status = 200, body = StateAnswer),
        (status = 404, description = "Removed, or never there.", body = StateAnswer),
    ))]
async fn state_of(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<StateAnswer>), ApiError> {
    let id = parse_workspace_id(&id)?;
    let gone = |id: String, status: Option<WorkspaceStatus>| {
        (
            StatusCode::NOT_FOUND,
            Json(StateAnswer {
                workspace_id: id,
                status,
                paused: None,
                deleted: true,
            }),
        )
    };
    let row = match state.app.workspace_get(&id).await {
        Ok(row) => row,
        Err(crate::app::Error::NotFound { .. }) => return Ok(gone(id, None)),
        Err(other) => return Err(other.into()),
    };
    if row.status == WorkspaceStatus::Removed {
        return Ok(gone(id, Some(row.status)));
    }
    AgentCaller::check(&state, &headers, id.clone()).await?;
    Ok((
        StatusCode::OK,
        Json(StateAnswer {
            workspace_id: id,
            paused: Some(row.status == WorkspaceStatus::Paused),
            status: Some(row.status),
            deleted: false,
        }),
    ))
}

/// Stop the workspace's agent and start it again; it goes back to `provisioning`.
#[utoipa::path(post, operation_id = "workspace_restart", path = "/workspaces/{id}/restart", tag = "workspaces",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    responses(
        (status = 200, body = RestartAnswer),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 409, description = "An ancestor is paused (`parent_paused`).", body = ErrorBody),
        (status = 410, description = "The workspace is removed (`workspace_removed`).", body = ErrorBody),
        (status = 503, description = "`provisioner not available`.", body = ErrorBody),
    ))]
async fn restart(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
) -> Result<Json<RestartAnswer>, ApiError> {
    state.app.restart(&id).await?;
    Ok(Json(RestartAnswer {
        status: WorkspaceStatus::Provisioning,
        config_dir: format!("/workspaces/{id}/config"),
        reset_session: false,
    }))
}

/// Pause the workspace and every descendant not paused yet: their agents stop.
#[utoipa::path(post, operation_id = "workspace_pause", path = "/workspaces/{id}/pause", tag = "workspaces",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    responses(
        (status = 200, body = PauseAnswer),
        (status = 404, description = "`workspace not found or already paused`.", body = ErrorBody),
    ))]
async fn pause(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
) -> Result<Json<PauseAnswer>, ApiError> {
    let paused_count = state.app.pause(&id).await?;
    Ok(Json(PauseAnswer {
        status: WorkspaceStatus::Paused,
        paused_count,
    }))
}

/// Resume a paused workspace and its paused descendants: they provision again.
#[utoipa::path(post, operation_id = "workspace_resume", path = "/workspaces/{id}/resume", tag = "workspaces",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    responses(
        (status = 200, body = ResumeAnswer),
        (status = 404, description = "`workspace not found or not paused`.", body = ErrorBody),
        (status = 409, description = "An ancestor is paused (`parent_paused`).", body = ErrorBody),
        (status = 503, description = "`provisioner not available`.", body = ErrorBody),
    ))]
async fn resume(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
) -> Result<Json<ResumeAnswer>, ApiError> {
    let resumed_count = state.app.resume(&id).await?;
    Ok(Json(ResumeAnswer {
        status: WorkspaceStatus::Provisioning,
        resumed_count,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogsQuery {
    /// How many of the last lines (200 by default, at most 10,000; other values mean 200).
    tail: Option<String>,
    /// `true` keeps the answer open and streams what the agent writes next.
    follow: Option<String>,
}

/// The most lines `?tail=` returns.
const MAX_TAIL: usize = 10_000;

/// The agent's last lines (`?tail=`, 200 by default), and with `?follow=true` what it
/// writes next, as it writes it.
#[utoipa::path(get, operation_id = "workspace_logs", path = "/workspaces/{id}/logs", tag = "workspaces",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId, LogsQuery),
    responses(
        (status = 200, description = "Plain text, one log line each.", body = String, content_type = "text/plain"),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
    ))]
async fn logs(
    State(state): State<AppState>,
    Query(query): Query<LogsQuery>,
    WorkspaceCaller { id, credential }: WorkspaceCaller,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let revoked = super::revocation(&state, &headers, &credential);
    state.app.workspace_exists(&id).await?;
    let lines = query
        .tail
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(200)
        .min(MAX_TAIL);
    let mut text = state.app.agent_logs(&id, lines).await?;
    if !text.is_empty() {
        text.push('\n');
    }
    let headers = [(
        axum::http::header::CONTENT_TYPE,
        "text/plain; charset=utf-8",
    )];
    let follow = query.follow.as_deref() == Some("true");
    let Some(rest) = state.app.agent_log_follow(&id).filter(|_| follow) else {
        return Ok((headers, text).into_response());
    };
    // What was logged so far, then what comes; a client that leaves ends the stream.
    let first = futures_util::stream::once(std::future::ready(axum::body::Bytes::from(text)));
    let body = futures_util::StreamExt::map(
        futures_util::StreamExt::take_until(futures_util::StreamExt::chain(first, rest), revoked),
        Ok::<_, std::convert::Infallible>,
    );
    Ok((headers, axum::body::Body::from_stream(body)).into_response())
}
