//! Bundles (spec §11): `GET /bundles/export/:id` and `POST /bundles/import`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::{AppState, json_body, require_admin};
use crate::app::bundles::Bundle;
use crate::app::workspaces::parse_workspace_id;
use crate::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/bundles/export/{id}", get(export))
        .route("/bundles/import", post(import))
}

async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_admin(&state, &headers)?;
    Ok(Json(state.app.bundle_export(&id).await?))
}

async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&state, &headers)?;
    let bundle: Bundle = json_body(body, "invalid bundle").await?;
    let answer = state.app.bundle_import(&bundle).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}
