//! Org templates: `POST /org/import` (spec §12). `?dry_run=true` answers the plan and
//! changes nothing; otherwise the tree is imported in one transaction: 201 when every
//! node is fine, 207 when some failed (each listed with its status and error), 422 with
//! the plan when nothing could be imported (or any problem, with `?strict=true`), 412
//! when required environment variables are not global secrets and `force` is not set,
//! 409 when the org is already imported (unless `?replace=true` or `?duplicate=true`).

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, json_body, require_admin};
use crate::app::org::ImportOptions;
use crate::error::ApiError;
use hatchery_store::EarlierImports;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/org/import", post(import))
        .route("/org/templates", get(templates))
        .route("/templates", get(workspace_templates))
}

#[derive(Debug, Deserialize)]
struct ImportBody {
    /// An org template directory on the server.
    dir: Option<String>,
    /// An inline template: an object, or its YAML as a string.
    template: Option<Value>,
    /// The files an inline template's nodes name (`*_file`, `files_dir`), by their path
    /// relative to the template: what `hatchery org import DIR` sends.
    files: Option<std::collections::BTreeMap<String, String>>,
    /// Overrides only the missing-environment refusal.
    #[serde(default)]
    force: bool,
}

#[derive(Debug, Deserialize)]
struct ImportQuery {
    dry_run: Option<String>,
    strict: Option<String>,
    replace: Option<String>,
    duplicate: Option<String>,
}

const INVALID_TEMPLATE: &str = "invalid org template";

/// `GET /templates`: the workspace templates of the server's templates directory.
async fn workspace_templates(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    Ok(Json(Value::Array(state.app.workspace_templates())))
}

/// `GET /org/templates`: the org templates of the server's templates directory.
async fn templates(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let listed = state.app.org_templates().await?;
    Ok(Json(serde_json::to_value(listed).map_err(|e| {
        ApiError::internal("failed to list templates", e)
    })?))
}

async fn import(
    State(state): State<AppState>,
    Query(query): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&state, &headers)?;
    let body: ImportBody = json_body(body, "invalid request body").await?;
    // Sent files are laid out in a private directory that lives as long as this import.
    let unpacked = match (&body.files, &body.dir) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid request body",
                "invalid_request",
                Some("files"),
                "files go with an inline template, not with dir",
            ));
        }
        (Some(files), None) => Some(crate::app::org::unpack_files(files)?),
        (None, _) => None,
    };
    let sent_base = unpacked.as_ref().map(|dir| dir.path().to_owned());
    let (template, base) = match (body.template, body.dir) {
        (Some(Value::String(yaml)), _) => {
            hatchery_core::org::parse_template(yaml.as_bytes()).map(|t| (t, sent_base))
        }
        (Some(object), _) => hatchery_core::org::decode(object).map(|t| (t, sent_base)),
        (None, Some(dir)) => Ok(state.app.org_template(&dir)?),
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
        ApiError::bad_request(
            INVALID_TEMPLATE,
            "invalid_org_template",
            Some("template"),
            e.to_string(),
        )
    })?;
    if query.dry_run.as_deref() == Some("true") {
        let plan = state.app.org_plan(&template, base.as_deref()).await?;
        let mut answer = serde_json::to_value(&plan)
            .map_err(|e| ApiError::internal("failed to render the plan", e))?;
        answer["dry_run"] = json!(true);
        answer["ok"] = json!(plan.is_clean());
        return Ok((StatusCode::OK, Json(answer)));
    }
    let earlier = match (
        query.replace.as_deref() == Some("true"),
        query.duplicate.as_deref() == Some("true"),
    ) {
        (false, false) => EarlierImports::Refuse,
        (true, false) => EarlierImports::Replace,
        (false, true) => EarlierImports::Duplicate,
        (true, true) => {
            return Err(ApiError::bad_request(
                "invalid request body",
                "invalid_request",
                None,
                "replace and duplicate exclude each other",
            ));
        }
    };
    let options = ImportOptions {
        strict: query.strict.as_deref() == Some("true"),
        force: body.force,
        earlier,
        as_org: true,
    };
    let imported = state
        .app
        .org_import(&template, base.as_deref(), options)
        .await?;
    let all_fine = imported.iter().all(|n| n.error.is_none());
    let workspaces: Vec<Value> = imported
        .iter()
        .map(|n| {
            let mut entry = json!({"id": n.id, "name": n.name, "tier": n.tier, "status": n.status});
            if let Some(error) = &n.error {
                entry["error"] = json!(error);
            }
            entry
        })
        .collect();
    let status = if all_fine {
        StatusCode::CREATED
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((
        status,
        Json(json!({"org": template.name, "count": workspaces.len(), "workspaces": workspaces})),
    ))
}
