//! Org templates: `POST /org/import` (spec §12). `?dry_run=true` answers the plan and
//! changes nothing; otherwise the tree is imported in one transaction: 201 when every
//! node is fine, 207 when some failed (each listed with its status and error), 422 with
//! the plan when nothing could be imported (or any problem, with `?strict=true`), 412
//! when required environment variables are not global secrets and `force` is not set,
//! 409 when the org is already imported (unless `?replace=true` or `?duplicate=true`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use hatchery_api::org::{
    DryRunAnswer, ImportAnswer, ImportBody, ImportedView, TemplateSummary, WorkspaceTemplateView,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gate::Admin;
use super::{AppState, Query, json_body};
use crate::app::org::ImportOptions;
use crate::error::{ApiError, ErrorBody};
use hatchery_store::EarlierImports;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import))
        .routes(routes!(templates))
        .routes(routes!(workspace_templates))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ImportQuery {
    /// `true`: answer the plan and change nothing.
    dry_run: Option<String>,
    /// `true`: any problem refuses the whole import (422 with the plan).
    strict: Option<String>,
    /// `true`: remove the earlier import of the same org in the same transaction.
    replace: Option<String>,
    /// `true`: import a second copy beside the earlier one.
    duplicate: Option<String>,
}

impl ImportQuery {
    /// What to do about an earlier import of the same org.
    fn earlier(&self) -> Result<EarlierImports, ApiError> {
        match (
            self.replace.as_deref() == Some("true"),
            self.duplicate.as_deref() == Some("true"),
        ) {
            (false, false) => Ok(EarlierImports::Refuse),
            (true, false) => Ok(EarlierImports::Replace),
            (false, true) => Ok(EarlierImports::Duplicate),
            (true, true) => Err(ApiError::bad_request(
                "invalid request body",
                "invalid_request",
                None,
                "replace and duplicate exclude each other",
            )),
        }
    }
}

/// What an import answers: the plan of a dry run, or what was written.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ImportReply {
    DryRun(DryRunAnswer),
    Imported(ImportAnswer),
}

const INVALID_TEMPLATE: &str = "invalid org template";

/// The workspace templates of the server's templates directory.
#[utoipa::path(get, operation_id = "template_list", path = "/templates", tag = "org", security(("admin" = [])),
    responses((status = 200, body = Vec<WorkspaceTemplateView>)))]
async fn workspace_templates(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<WorkspaceTemplateView>>, ApiError> {
    Ok(Json(state.app.workspace_templates()))
}

/// The org templates of the server's templates directory, with whether the global
/// secrets meet their required environment.
#[utoipa::path(get, operation_id = "org_template_list", path = "/org/templates", tag = "org", security(("admin" = [])),
    responses((status = 200, body = Vec<TemplateSummary>)))]
async fn templates(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<TemplateSummary>>, ApiError> {
    Ok(Json(state.app.org_templates().await?))
}

/// Import an org template: every node checked as a create would be, the whole tree
/// written in one transaction. A node that cannot be created is recorded `failed` with its
/// reason, its subtree with `parent failed`; nothing is left provisioning.
#[utoipa::path(post, operation_id = "org_import", path = "/org/import", tag = "org", security(("admin" = [])),
    params(ImportQuery), request_body = ImportBody,
    responses(
        (status = 200, description = "The plan of a dry run; nothing was changed.", body = DryRunAnswer),
        (status = 201, description = "Every node was created.", body = ImportAnswer),
        (status = 207, description = "Some nodes failed; each says why.", body = ImportAnswer),
        (status = 400, description = "`invalid request body`, `provide 'dir' or 'template'`, `invalid org template` (`detail` says where), `invalid org directory`.", body = ErrorBody),
        (status = 404, description = "`org template not found: <dir>`.", body = ErrorBody),
        (status = 409, description = "The org is already imported (`org_already_imported`, naming its root); pass `replace` or `duplicate`.", body = ErrorBody),
        (status = 412, description = "Required environment variables are not global secrets (`missing_required_env`, with `missing_env`); pass `force`.", body = ErrorBody),
        (status = 422, description = "Nothing could be imported, or, with `strict`, anything could not (`org_import_refused`, with the `plan`).", body = ErrorBody),
        (status = 503, description = "No registry snapshot is in force (`registry_unavailable`).", body = ErrorBody),
    ))]
async fn import(
    State(state): State<AppState>,
    Query(query): Query<ImportQuery>,
    _admin: Admin,
    body: Body,
) -> Result<(StatusCode, Json<ImportReply>), ApiError> {
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
        let answer = DryRunAnswer {
            ok: plan.is_clean(),
            plan,
            dry_run: true,
        };
        return Ok((StatusCode::OK, Json(ImportReply::DryRun(answer))));
    }
    let options = ImportOptions {
        strict: query.strict.as_deref() == Some("true"),
        force: body.force,
        earlier: query.earlier()?,
        as_org: true,
    };
    let imported = state
        .app
        .org_import(&template, base.as_deref(), options)
        .await?;
    let all_fine = imported.iter().all(|n| n.error.is_none());
    let workspaces: Vec<ImportedView> = imported
        .into_iter()
        .map(|n| ImportedView {
            id: n.id,
            name: n.name,
            tier: n.tier,
            status: n.status,
            error: n.error,
        })
        .collect();
    let status = if all_fine {
        StatusCode::CREATED
    } else {
        StatusCode::MULTI_STATUS
    };
    let answer = ImportAnswer {
        org: template.name,
        count: workspaces.len(),
        workspaces,
    };
    Ok((status, Json(ImportReply::Imported(answer))))
}
