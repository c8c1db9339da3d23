//! `/workspaces/:id/activity`: report and list what an agent did.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::views::timestamp;
use super::{AppState, json_body, require_workspace};
use crate::app::activity::{ActivityQuery, ReportActivity};
use crate::app::workspaces::parse_workspace_id;
use crate::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/workspaces/{id}/activity", get(list).post(report))
}

async fn report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    let body: ReportActivity = json_body(body, "invalid request body").await?;
    state.app.workspace_live(&id).await?;
    state.app.activity_report(&id, body).await?;
    Ok(Json(json!({"status": "logged"})))
}

async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ActivityQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    let rows = state.app.activity_list(&id, query).await?;
    Ok(Json(Value::Array(
        rows.iter()
            .map(|row| {
                let mut view = json!({
                    "id": row.id,
                    "workspace_id": row.workspace_id,
                    "activity_type": row.activity_type,
                    "source_id": row.source_id,
                    "target_id": row.target_id,
                    "method": row.method,
                    "summary": row.summary,
                    "duration_ms": row.duration_ms,
                    "status": row.status,
                    "error_detail": row.error_detail,
                    "created_at": timestamp(row.created_at),
                });
                // Bodies appear only when stored.
                for (key, stored) in [
                    ("request_body", &row.request_body),
                    ("response_body", &row.response_body),
                ] {
                    if let Some(text) = stored {
                        view[key] = serde_json::from_str(text).unwrap_or(Value::Null);
                    }
                }
                view
            })
            .collect(),
    )))
}
