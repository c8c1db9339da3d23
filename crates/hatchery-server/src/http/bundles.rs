//! Bundles (spec §11): `GET /bundles/export/:id` and `POST /bundles/import`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gate::{Admin, WorkspacePath};
use super::workspaces::WorkspaceId;
use super::{AppState, json_body};
use crate::app::bundles::{Bundle, BundleExport, BundleImported};
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export))
        .routes(routes!(import))
}

/// A workspace and its live subtree as one portable document.
#[utoipa::path(get, operation_id = "bundle_export", path = "/bundles/export/{id}", tag = "org", security(("admin" = [])),
    params(WorkspaceId),
    responses(
        (status = 200, body = BundleExport),
        (status = 404, description = "`bundle not found` (unknown or removed).", body = ErrorBody),
        (status = 409, description = "The subtree is deeper than 32 levels (`bundle_too_deep`).", body = ErrorBody),
    ))]
async fn export(
    State(state): State<AppState>,
    WorkspacePath(id): WorkspacePath,
    _admin: Admin,
) -> Result<Json<BundleExport>, ApiError> {
    Ok(Json(state.app.bundle_export(&id).await?))
}

/// A bundle back as new workspaces (fresh ids, the tree kept), all or nothing: a node
/// that cannot be created refuses the whole bundle.
#[utoipa::path(post, operation_id = "bundle_import", path = "/bundles/import", tag = "org", security(("admin" = [])),
    request_body = Bundle,
    responses(
        (status = 201, body = BundleImported),
        (status = 400, description = "`invalid bundle`.", body = ErrorBody),
        (status = 422, description = "A node cannot be created (`org_import_refused`, with the `plan`).", body = ErrorBody),
        (status = 503, description = "No registry snapshot is in force (`registry_unavailable`).", body = ErrorBody),
    ))]
async fn import(
    State(state): State<AppState>,
    _admin: Admin,
    body: Body,
) -> Result<(StatusCode, Json<BundleImported>), ApiError> {
    let bundle: Bundle = json_body(body, "invalid bundle").await?;
    let answer = state.app.bundle_import(&bundle).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}
