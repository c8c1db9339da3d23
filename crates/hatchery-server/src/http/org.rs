//! Org templates: `POST /org/import?dry_run=true` plans an import (spec §12). The import
//! itself is not built yet: without `dry_run` the answer says so (501), and nothing is
//! created.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, json_body, require_admin};
use crate::error::ApiError;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/org/import", post(import))
}

#[derive(Debug, Deserialize)]
struct ImportBody {
    /// An org template directory on the server.
    dir: Option<String>,
    /// An inline template: an object, or its YAML as a string.
    template: Option<Value>,
    /// Overrides only the missing-environment refusal.
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "read by the import itself, which is not built yet"
    )]
    force: bool,
}

#[derive(Debug, Deserialize)]
struct ImportQuery {
    dry_run: Option<String>,
}

const INVALID_TEMPLATE: &str = "invalid org template";

async fn import(
    State(state): State<AppState>,
    Query(query): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let body: ImportBody = json_body(body, "invalid request body").await?;
    let template = match (body.template, body.dir) {
        (Some(Value::String(yaml)), _) => hatchery_core::org::parse_template(yaml.as_bytes()),
        (Some(object), _) => hatchery_core::org::decode(object),
        (None, Some(dir)) => {
            return Err(ApiError::bad_request(
                "invalid org directory",
                "invalid_org_directory",
                Some("dir"),
                format!("{dir:?}: this server has no org templates directory yet; send the template inline"),
            ));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "provide 'dir' or 'template'",
                "invalid_request",
                None,
                "",
            ));
        }
    }
    .map_err(|e| {
        ApiError::bad_request(INVALID_TEMPLATE, "invalid_org_template", Some("template"), e.to_string())
    })?;
    if query.dry_run.as_deref() != Some("true") {
        return Err(ApiError::NotImplemented {
            message: "org import is not available yet: plan it with ?dry_run=true",
        });
    }
    let plan = state.app.org_plan(&template).await?;
    let mut answer = serde_json::to_value(&plan)
        .map_err(|e| ApiError::internal("failed to render the plan", e))?;
    answer["dry_run"] = json!(true);
    answer["ok"] = json!(plan.is_clean());
    Ok(Json(answer))
}
