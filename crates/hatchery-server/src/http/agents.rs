//! The agent side of the platform API: `/registry/*` (register, heartbeat, update-card,
//! discover, peers, check-access) and workspace tokens (test-token, bootstrap token,
//! `/workspaces/:id/tokens`).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::views::timestamp;
use super::{AppState, credential, json_body, require_admin, require_boot, require_workspace};
use crate::app::access::Credential;
use crate::app::agents::{
    Heartbeat, INVALID_BODY, Register, UpdateCard, body_id, heartbeat_id, register_id,
    update_card_id,
};
use crate::app::workspaces::parse_workspace_id;
use crate::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/registry/register", post(register))
        .route("/registry/heartbeat", post(heartbeat))
        .route("/registry/update-card", post(update_card))
        .route("/registry/discover/{id}", get(discover))
        .route("/registry/{id}/peers", get(peers))
        .route("/registry/check-access", post(check_access))
        .route("/admin/workspaces/{id}/test-token", get(test_token))
        .route(
            "/admin/workspaces/{id}/bootstrap-token",
            post(bootstrap_token),
        )
        .route(
            "/workspaces/{id}/tokens",
            get(list_tokens).post(create_token),
        )
        .route("/workspaces/{id}/tokens/{token_id}", delete(revoke_token))
}

fn token_id_of(credential: &Credential) -> Option<String> {
    match credential {
        Credential::Token(token) => Some(token.token_id.clone()),
        _ => None,
    }
}

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body: Register = json_body(body, INVALID_BODY).await?;
    let id = register_id(&body)?;
    let credential = credential(&state, &headers).await?;
    let auth = state.app.gate_register(&credential, &id).await?;
    let token = state.app.register(&id, auth, body).await?;
    Ok(Json(match token {
        Some(token) => json!({"status": "registered", "auth_token": token}),
        None => json!({"status": "registered"}),
    }))
}

async fn heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body: Heartbeat = json_body(body, INVALID_BODY).await?;
    let id = heartbeat_id(&body)?;
    let credential = require_boot(&state, &headers, &id).await?;
    state
        .app
        .heartbeat(&id, token_id_of(&credential), &body)
        .await?;
    Ok(Json(json!({"status": "ok"})))
}

async fn update_card(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body: UpdateCard = json_body(body, INVALID_BODY).await?;
    let id = update_card_id(&body)?;
    require_boot(&state, &headers, &id).await?;
    state.app.update_card(&id, body).await?;
    Ok(Json(json!({"status": "updated"})))
}

/// The CALLER gate: `X-Workspace-ID` is required, and the caller's bearer must be its own.
async fn require_caller(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let caller = headers
        .get("x-workspace-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest {
            message: "X-Workspace-ID header is required".to_owned(),
            code: "caller_required",
            field: None,
            detail: None,
        })?;
    let caller = parse_workspace_id(caller)?;
    require_boot(state, headers, &caller).await?;
    Ok(caller)
}

async fn discover(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let target = parse_workspace_id(&id)?;
    let caller = require_caller(&state, &headers).await?;
    Ok(Json(state.app.discover(&caller, &target).await?))
}

#[derive(Debug, Deserialize)]
struct PeersQuery {
    q: Option<String>,
}

async fn peers(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PeersQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_boot(&state, &headers, &id).await?;
    let peers = state.app.peers(&id, query.q.as_deref()).await?;
    Ok(Json(Value::Array(
        peers
            .iter()
            .map(|w| {
                json!({
                    "id": w.id,
                    "name": w.name,
                    "role": w.role,
                    "tier": w.tier,
                    "status": w.status,
                    "url": w.url,
                    "parent_id": w.parent_id,
                    "agent_card": w.agent_card.as_deref().and_then(|c| serde_json::from_str::<Value>(c).ok()),
                    "active_tasks": w.active_tasks,
                })
            })
            .collect(),
    )))
}

#[derive(Debug, Deserialize)]
struct CheckAccess {
    caller_id: Option<String>,
    target_id: Option<String>,
}

async fn check_access(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body: CheckAccess = json_body(body, INVALID_BODY).await?;
    let caller = body_id(body.caller_id.as_deref(), "caller_id")?;
    let target = body_id(body.target_id.as_deref(), "target_id")?;
    // Not a topology oracle: only the caller itself (or the admin) may ask.
    require_workspace(&state, &headers, &caller).await?;
    let allowed = state.app.reachable(&caller, &target).await?;
    Ok(Json(json!({"allowed": allowed})))
}

async fn test_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_admin(&state, &headers)?;
    let token = state.app.token_issue(&id).await?;
    Ok(Json(json!({"auth_token": token, "workspace_id": id})))
}

async fn bootstrap_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_workspace_id(&id)?;
    require_admin(&state, &headers)?;
    let (token, expires_at) = state.app.bootstrap_issue(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"bootstrap_token": token, "workspace_id": id, "expires_at": timestamp(expires_at)}),
        ),
    ))
}

#[derive(Debug, Deserialize)]
struct TokensQuery {
    limit: Option<String>,
    offset: Option<String>,
}

async fn list_tokens(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<TokensQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    let limit = query
        .limit
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| (1..=200).contains(l))
        .unwrap_or(50);
    let offset = query
        .offset
        .and_then(|o| o.parse::<i64>().ok())
        .filter(|o| *o >= 0)
        .unwrap_or(0);
    let (tokens, count) = state.app.token_list(&id, limit, offset).await?;
    let tokens: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "prefix": t.prefix,
                "created_at": timestamp(t.created_at),
                "last_used_at": t.last_used_at.map(timestamp),
            })
        })
        .collect();
    Ok(Json(json!({"tokens": tokens, "count": count})))
}

async fn create_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    let token = state.app.token_issue(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "auth_token": token,
            "workspace_id": id,
            "message": "store this token now: it is shown once",
        })),
    ))
}

async fn revoke_token(
    State(state): State<AppState>,
    Path((id, token_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    state.app.token_revoke(&id, &token_id).await?;
    Ok(Json(json!({"status": "revoked"})))
}
