//! Secrets: global (`/settings/secrets`, alias `/admin/secrets`) and per workspace.
//! Lists show names and times, never values.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use hatchery_api::secrets::{SecretChanged, SecretListed, SetSecret};
use hatchery_store::{GLOBAL_SCOPE, workspace_scope};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gate::{Admin, AgentCaller, WorkspaceCaller};
use super::views::timestamp;
use super::workspaces::WorkspaceId;
use super::{AppState, Path, json_body};
use crate::app::secrets::SecretSummary;
use crate::app::workspaces::parse_workspace_id;
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(global_list, global_set))
        .routes(routes!(global_delete))
        .routes(routes!(admin_list, admin_set))
        .routes(routes!(admin_delete))
        .routes(routes!(workspace_list, workspace_set))
        .routes(routes!(workspace_values))
        .routes(routes!(workspace_delete))
}

/// The secret in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(
    dead_code,
    reason = "a schema for the OpenAPI document; handlers read the raw text"
)]
struct SecretKey {
    /// The secret's name.
    key: String,
}

fn listed(summaries: Vec<SecretSummary>) -> Json<Vec<SecretListed>> {
    Json(
        summaries
            .into_iter()
            .map(|s| SecretListed {
                key: s.key,
                has_value: true,
                scope: s.scope.to_owned(),
                created_at: timestamp(s.created_at),
                updated_at: timestamp(s.updated_at),
            })
            .collect(),
    )
}

/// The global secrets, by name.
#[utoipa::path(get, operation_id = "secret_list_global", path = "/settings/secrets", tag = "secrets", security(("admin" = [])),
    responses((status = 200, body = Vec<SecretListed>)))]
async fn global_list(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<SecretListed>>, ApiError> {
    Ok(listed(state.app.secret_list_global().await?))
}

/// Set a global secret. Workspaces that do not override it restart to pick it up.
#[utoipa::path(method(put, post), operation_id = "secret_set_global", path = "/settings/secrets", tag = "secrets", security(("admin" = [])),
    request_body = SetSecret,
    responses(
        (status = 200, body = SecretChanged),
        (status = 400, description = "`invalid request body`: an empty or badly named key, or an empty value.", body = ErrorBody),
        (status = 503, description = "The server has no secrets key (`secrets_key_missing`).", body = ErrorBody),
    ))]
async fn global_set(
    State(state): State<AppState>,
    _admin: Admin,
    body: Body,
) -> Result<Json<SecretChanged>, ApiError> {
    let body: SetSecret = json_body(body, "invalid request body").await?;
    state.app.secret_set_global(&body.key, &body.value).await?;
    Ok(Json(SecretChanged {
        status: "saved".to_owned(),
        key: body.key,
        scope: Some("global".to_owned()),
    }))
}

/// Delete a global secret.
#[utoipa::path(delete, operation_id = "secret_delete_global", path = "/settings/secrets/{key}", tag = "secrets", security(("admin" = [])),
    params(SecretKey),
    responses(
        (status = 200, body = SecretChanged),
        (status = 404, description = "`secret not found`.", body = ErrorBody),
    ))]
async fn global_delete(
    State(state): State<AppState>,
    Path(key): Path<String>,
    _admin: Admin,
) -> Result<Json<SecretChanged>, ApiError> {
    state.app.secret_delete(GLOBAL_SCOPE, &key).await?;
    Ok(Json(SecretChanged {
        status: "deleted".to_owned(),
        key,
        scope: Some("global".to_owned()),
    }))
}

/// The global secrets, by name (an alias of `GET /settings/secrets`).
#[utoipa::path(get, operation_id = "secret_list_global_alias", path = "/admin/secrets", tag = "secrets", security(("admin" = [])),
    responses((status = 200, body = Vec<SecretListed>)))]
async fn admin_list(
    state: State<AppState>,
    admin: Admin,
) -> Result<Json<Vec<SecretListed>>, ApiError> {
    global_list(state, admin).await
}

/// Set a global secret (an alias of `POST /settings/secrets`).
#[utoipa::path(post, operation_id = "secret_set_global_alias", path = "/admin/secrets", tag = "secrets", security(("admin" = [])),
    request_body = SetSecret,
    responses(
        (status = 200, body = SecretChanged),
        (status = 400, description = "`invalid request body`: an empty or badly named key, or an empty value.", body = ErrorBody),
        (status = 503, description = "The server has no secrets key (`secrets_key_missing`).", body = ErrorBody),
    ))]
async fn admin_set(
    state: State<AppState>,
    admin: Admin,
    body: Body,
) -> Result<Json<SecretChanged>, ApiError> {
    global_set(state, admin, body).await
}

/// Delete a global secret (an alias of `DELETE /settings/secrets/{key}`).
#[utoipa::path(delete, operation_id = "secret_delete_global_alias", path = "/admin/secrets/{key}", tag = "secrets", security(("admin" = [])),
    params(SecretKey),
    responses(
        (status = 200, body = SecretChanged),
        (status = 404, description = "`secret not found`.", body = ErrorBody),
    ))]
async fn admin_delete(
    state: State<AppState>,
    key: Path<String>,
    admin: Admin,
) -> Result<Json<SecretChanged>, ApiError> {
    global_delete(state, key, admin).await
}

/// The workspace's secrets, then the global ones it does not override, by name.
#[utoipa::path(get, operation_id = "secret_list_workspace", path = "/workspaces/{id}/secrets", tag = "secrets",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    responses(
        (status = 200, body = Vec<SecretListed>),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
    ))]
async fn workspace_list(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
) -> Result<Json<Vec<SecretListed>>, ApiError> {
    Ok(listed(state.app.secret_list_workspace(&id).await?))
}

/// Set one of the workspace's secrets; the workspace restarts to pick it up.
#[utoipa::path(method(put, post), operation_id = "secret_set_workspace", path = "/workspaces/{id}/secrets", tag = "secrets",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    request_body = SetSecret,
    responses(
        (status = 200, body = SecretChanged),
        (status = 400, description = "`invalid request body`: an empty or badly named key, or an empty value.", body = ErrorBody),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 410, description = "The workspace is removed (`workspace_removed`).", body = ErrorBody),
        (status = 503, description = "The server has no secrets key (`secrets_key_missing`).", body = ErrorBody),
    ))]
async fn workspace_set(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
    body: Body,
) -> Result<Json<SecretChanged>, ApiError> {
    let body: SetSecret = json_body(body, "invalid request body").await?;
    state
        .app
        .secret_set_workspace(&id, &body.key, &body.value)
        .await?;
    Ok(Json(SecretChanged {
        status: "saved".to_owned(),
        key: body.key,
        scope: None,
    }))
}

/// The values the workspace's agent gets: its own secrets over the global ones. What does
/// not decrypt refuses the whole answer (500 with `failed_keys`), never a partial one.
#[utoipa::path(get, operation_id = "secret_values", path = "/workspaces/{id}/secrets/values", tag = "secrets",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    responses(
        (status = 200, description = "Each value by its name.", body = BTreeMap<String, String>),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 503, description = "The server has no secrets key (`secrets_key_missing`).", body = ErrorBody),
    ))]
async fn workspace_values(
    State(state): State<AppState>,
    AgentCaller { id, .. }: AgentCaller,
) -> Result<Json<BTreeMap<String, String>>, ApiError> {
    Ok(Json(state.app.secret_values(&id).await?))
}

/// Delete one of the workspace's secrets.
#[utoipa::path(delete, operation_id = "secret_delete_workspace", path = "/workspaces/{id}/secrets/{key}", tag = "secrets",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId, SecretKey),
    responses(
        (status = 200, body = SecretChanged),
        (status = 404, description = "`workspace not found`, or `secret not found`.", body = ErrorBody),
    ))]
async fn workspace_delete(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<SecretChanged>, ApiError> {
    let id = parse_workspace_id(&id)?;
    WorkspaceCaller::check(&state, &headers, id.clone()).await?;
    state.app.workspace_exists(&id).await?;
    state.app.secret_delete(&workspace_scope(&id), &key).await?;
    Ok(Json(SecretChanged {
        status: "deleted".to_owned(),
        key,
        scope: None,
    }))
}
