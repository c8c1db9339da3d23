//! The web dashboard: a few static files, built into the binary, served at `/`. It is plain
//! HTML, CSS and JavaScript talking to the same API as every other client, so there is no
//! build step and nothing to fetch when the binary is built.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, Path};
use crate::error::{ApiError, ErrorBody};

/// Each file the dashboard has: its name under `/dashboard/`, content type and the copy
/// built into the binary. Only these names are ever served.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../dashboard/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../dashboard/app.css"),
    ),
];

/// The page may load only its own files and talk only to its own origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(file))
}

/// The dashboard's page.
#[utoipa::path(get, operation_id = "dashboard_index", path = "/", tag = "dashboard",
    responses((status = 200, description = "The dashboard's HTML page.", body = String, content_type = "text/html")))]
async fn index(State(state): State<AppState>) -> Result<Response, ApiError> {
    serve(&state, "index.html").await
}

/// One of the dashboard's files (`app.js`, `app.css`, `index.html`).
#[utoipa::path(get, operation_id = "dashboard_file", path = "/dashboard/{file}", tag = "dashboard",
    params(("file" = String, Path, description = "The file's name.")),
    responses(
        (status = 200, description = "The file.", content((String = "text/javascript"), (String = "text/css"), (String = "text/html"))),
        (status = 404, description = "No such file (`not_found`).", body = ErrorBody),
    ))]
async fn file(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    serve(&state, &name).await
}

async fn serve(state: &AppState, name: &str) -> Result<Response, ApiError> {
    let Some((name, content_type, built_in)) = FILES.iter().find(|(n, ..)| *n == name) else {
        return Err(ApiError::NotFound {
            message: "not found".into(),
            code: "not_found",
        });
    };
    let body: std::borrow::Cow<'static, str> = match &state.dashboard_dir {
        Some(dir) => tokio::fs::read_to_string(dir.join(name))
            .await
            .map_err(|e| ApiError::internal("failed to read the dashboard", e))?
            .into(),
        None => (*built_in).into(),
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}
