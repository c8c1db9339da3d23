//! Secrets: global (`/settings/secrets`, alias `/admin/secrets`) and per workspace.
//! Lists show names and times, never values.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get};
use axum::{Json, Router};
use hatchery_store::{GLOBAL_SCOPE, workspace_scope};
use serde::Deserialize;
use serde_json::{Value, json};

use super::views::timestamp;
use super::{AppState, json_body, require_admin, require_boot, require_workspace};
use crate::app::secrets::SecretSummary;
use crate::app::workspaces::parse_workspace_id;
use crate::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/settings/secrets",
            get(global_list).put(global_set).post(global_set),
        )
        .route("/settings/secrets/{key}", delete(global_delete))
        .route("/admin/secrets", get(global_list).post(global_set))
        .route("/admin/secrets/{key}", delete(global_delete))
        .route(
            "/workspaces/{id}/secrets",
            get(workspace_list).put(workspace_set).post(workspace_set),
        )
        .route("/workspaces/{id}/secrets/values", get(workspace_values))
        .route("/workspaces/{id}/secrets/{key}", delete(workspace_delete))
}

#[derive(Debug, Deserialize)]
struct SetSecret {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

fn listed(summaries: Vec<SecretSummary>) -> Json<Value> {
    Json(Value::Array(
        summaries
            .into_iter()
            .map(|s| {
                json!({
                    "key": s.key,
                    "has_value": true,
                    "scope": s.scope,
                    "created_at": timestamp(s.created_at),
                    "updated_at": timestamp(s.updated_at),
                })
            })
            .collect(),
    ))
}

async fn global_list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    Ok(listed(state.app.secret_list_global().await?))
}

async fn global_set(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let body: SetSecret = json_body(body, "invalid request body").await?;
    state.app.secret_set_global(&body.key, &body.value).await?;
    Ok(Json(
        json!({"status": "saved", "key": body.key, "scope": "global"}),
    ))
}

async fn global_delete(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    state.app.secret_delete(GLOBAL_SCOPE, &key).await?;
    Ok(Json(
        json!({"status": "deleted", "key": key, "scope": "global"}),
    ))
}

async fn workspace_list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    Ok(listed(state.app.secret_list_workspace(&id).await?))
}

async fn workspace_set(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    let body: SetSecret = json_body(body, "invalid request body").await?;
    state
        .app
        .secret_set_workspace(&id, &body.key, &body.value)
        .await?;
    Ok(Json(json!({"status": "saved", "key": body.key})))
}

async fn workspace_values(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_boot(&state, &headers, &id).await?;
    let values = state.app.secret_values(&id).await?;
    Ok(Json(json!(values)))
}

async fn workspace_delete(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    state.app.workspace_exists(&id).await?;
    state.app.secret_delete(&workspace_scope(&id), &key).await?;
    Ok(Json(json!({"status": "deleted", "key": key})))
}
