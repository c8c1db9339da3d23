//! `/workspaces`: create, list, read, update, remove; the generated config and the
//! derivation behind it.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::views::{workspace_full, workspace_single};
use super::{AppState, json_body, require_admin, require_boot, require_workspace};
use crate::app::workspaces::{CreateWorkspace, parse_workspace_id};
use crate::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces", get(list).post(create))
        .route("/workspaces/{id}", get(show).patch(update).delete(remove))
        .route("/workspaces/{id}/config", get(config))
        .route("/workspaces/{id}/derivation", get(derivation))
        .route("/workspaces/{id}/state", get(state_of))
        .route("/workspaces/{id}/restart", post(restart))
        .route("/workspaces/{id}/pause", post(pause))
        .route("/workspaces/{id}/resume", post(resume))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&state, &headers)?;
    let request: CreateWorkspace = json_body(body, "invalid workspace payload").await?;
    let created = state.app.workspace_create(request).await?;
    state.metrics.workspace_created();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": created.id,
            "status": created.status,
            "awareness_namespace": format!("workspace:{}", created.id),
            "workspace_access": created.workspace_access,
            "provider": created.config.provider,
            "provider_source": created.config.source.as_str(),
            "llm_billing_mode": created.config.billing.map(hatchery_core::BillingMode::as_str),
            "registry_hash": created.config.registry_hash,
        })),
    ))
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let rows = state.app.workspace_list().await?;
    Ok(Json(Value::Array(
        rows.iter().map(workspace_full).collect(),
    )))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    let row = state.app.workspace_get(&id).await?;
    Ok(Json(workspace_single(&row)))
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    let body: Map<String, Value> = json_body(body, "invalid request body").await?;
    let needs_restart = state.app.workspace_update(&id, &body).await?;
    Ok(Json(if needs_restart {
        json!({"status": "updated", "needs_restart": true})
    } else {
        json!({"status": "updated"})
    }))
}

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    confirm: Option<String>,
    purge: Option<String>,
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<DeleteQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_admin(&state, &headers)?;
    let confirm = query.confirm.as_deref() == Some("true");
    let purge = query.purge.as_deref() == Some("true");
    let cascade_deleted = state.app.workspace_delete(&id, confirm, purge).await?;
    let status = if purge { "purged" } else { "removed" };
    Ok(Json(
        json!({"status": status, "cascade_deleted": cascade_deleted}),
    ))
}

async fn config(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    let files = state.app.workspace_files(&id).await?;
    let files: Map<String, Value> = files
        .into_iter()
        .map(|f| (f.path, Value::String(f.content)))
        .collect();
    Ok(Json(json!({"workspace_id": id, "files": files})))
}

async fn derivation(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    let row = state.app.workspace_get(&id).await?;
    let mut body: Value = serde_json::from_str(&row.derivation)
        .map_err(|e| ApiError::internal("failed to read derivation", e))?;
    body["workspace_id"] = json!(id);
    body["registry_hash"] = json!(row.registry_hash);
    Ok(Json(body))
}

/// `GET /workspaces/:id/state`: what an agent polls to learn whether it should run.
async fn state_of(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_workspace_id(&id)?;
    require_boot(&state, &headers, &id).await?;
    let row = match state.app.workspace_get(&id).await {
        Ok(row) => row,
        Err(ApiError::NotFound { .. }) => {
            return Ok((
                StatusCode::NOT_FOUND,
                Json(json!({"workspace_id": id, "deleted": true})),
            ));
        }
        Err(other) => return Err(other),
    };
    if row.status == "removed" {
        return Ok((
            StatusCode::NOT_FOUND,
            Json(json!({"workspace_id": id, "status": "removed", "deleted": true})),
        ));
    }
    Ok((
        StatusCode::OK,
        Json(json!({
            "workspace_id": id,
            "status": row.status,
            "paused": row.status == "paused",
            "deleted": false,
        })),
    ))
}

async fn restart(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    state.app.restart(&id).await?;
    Ok(Json(json!({
        "status": "provisioning",
        "config_dir": format!("/workspaces/{id}/config"),
        "reset_session": false,
    })))
}

async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    let paused = state.app.pause(&id).await?;
    Ok(Json(json!({"status": "paused", "paused_count": paused})))
}

async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    let resumed = state.app.resume(&id).await?;
    Ok(Json(
        json!({"status": "provisioning", "resumed_count": resumed}),
    ))
}
