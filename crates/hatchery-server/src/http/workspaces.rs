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
        .route("/workspaces/{id}/logs", get(logs))
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
    state.app.metrics.workspace_created();
    let mut body = json!({
        "id": created.id,
        "status": created.status,
        "awareness_namespace": format!("workspace:{}", created.id),
        "workspace_access": created.workspace_access,
        "provider": created.config.provider,
        "provider_source": created.config.source.as_str(),
        "llm_billing_mode": created.config.billing.map(hatchery_core::BillingMode::as_str),
        "registry_hash": created.config.registry_hash,
    });
    if created.status != "provisioning" {
        body["external"] = json!(true);
    }
    if let Some(token) = &created.external_token {
        body["connection"] = connection(&headers, &created.id, token);
    }
    Ok((StatusCode::CREATED, Json(body)))
}

/// What an external agent needs to join: where to register and beat, with its token.
fn connection(headers: &HeaderMap, id: &str, token: &str) -> Value {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let platform_url = format!("http://{host}");
    let registry_endpoint = format!("{platform_url}/registry/register");
    let heartbeat_endpoint = format!("{platform_url}/registry/heartbeat");
    json!({
        "workspace_id": id,
        "platform_url": platform_url,
        "auth_token": token,
        "registry_endpoint": registry_endpoint,
        "heartbeat_endpoint": heartbeat_endpoint,
        "curl_register_template": format!(
            "curl -s -X POST {registry_endpoint} -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"id\":\"{id}\",\"url\":\"<YOUR_AGENT_URL>\",\"agent_card\":{{\"name\":\"<NAME>\"}}}}'"
        ),
        "python_snippet": format!(
            "import requests\nH = {{\"Authorization\": \"Bearer {token}\"}}\nrequests.post(\"{registry_endpoint}\", headers=H, json={{\"id\": \"{id}\", \"url\": \"<YOUR_AGENT_URL>\", \"agent_card\": {{\"name\": \"<NAME>\"}}}}).raise_for_status()\n# then every 30 s:\nrequests.post(\"{heartbeat_endpoint}\", headers=H, json={{\"workspace_id\": \"{id}\"}}).raise_for_status()\n"
        ),
    })
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
    // Gone or never there: said before the gate, since a removed workspace's tokens are
    // revoked and its agent must still learn to stop.
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
    require_boot(&state, &headers, &id).await?;
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

#[derive(Debug, Deserialize)]
struct LogsQuery {
    tail: Option<String>,
    follow: Option<String>,
}

/// The most lines `?tail=` returns.
const MAX_TAIL: usize = 10_000;

/// `GET /workspaces/:id/logs`: the agent's last lines (`?tail=`, 200 by default), and with
/// `?follow=true` what it writes next, as it writes it.
async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<LogsQuery>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
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
    let body = futures_util::StreamExt::map(futures_util::StreamExt::chain(first, rest), |chunk| {
        Ok::<_, std::convert::Infallible>(chunk)
    });
    Ok((headers, axum::body::Body::from_stream(body)).into_response())
}
