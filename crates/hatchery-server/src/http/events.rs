//! `/events`: the persisted event log, newest first, at most 100.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::views::timestamp;
use super::{AppState, require_admin};
use crate::app::store_error;
use crate::app::workspaces::parse_workspace_id;
use crate::error::ApiError;

const LIMIT: i64 = 100;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/events", get(all))
        .route("/events/{workspace_id}", get(one_workspace))
}

async fn all(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    list(&state, None).await
}

async fn one_workspace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_admin(&state, &headers)?;
    list(&state, Some(&id)).await
}

async fn list(state: &AppState, workspace_id: Option<&str>) -> Result<Json<Value>, ApiError> {
    let rows = state
        .app
        .store
        .event_list(workspace_id, LIMIT)
        .await
        .map_err(store_error("failed to list events"))?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "event_type": e.event_type,
                    "workspace_id": e.workspace_id,
                    "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null),
                    "created_at": timestamp(e.created_at),
                })
            })
            .collect(),
    )))
}
