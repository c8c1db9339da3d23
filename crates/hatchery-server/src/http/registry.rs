//! The registry's admin view, reload and explanations.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gate::Admin;
use super::views::{ExplainAnswer, time};
use super::{AppState, Query};
use crate::error::{ApiError, ErrorBody};
use crate::registry_source::Snapshot;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(reload))
        .routes(routes!(explain))
}

/// The snapshot in force.
#[derive(Debug, Serialize, ToSchema)]
struct SnapshotView {
    /// The content hash of the manifest (`sha256:…`); null when none is in force.
    hash: Option<String>,
    /// Where it came from (a path, or the built-in catalog).
    source: Option<String>,
    /// When it was loaded.
    loaded_at: Option<String>,
    /// How many providers it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    providers: Option<usize>,
    /// How many runtimes it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    runtimes: Option<usize>,
}

impl SnapshotView {
    fn of(snapshot: &Snapshot) -> Self {
        Self {
            hash: Some(snapshot.registry.hash().to_owned()),
            source: Some(snapshot.source.clone()),
            loaded_at: Some(time(snapshot.loaded_at)),
            providers: Some(snapshot.registry.providers().len()),
            runtimes: Some(snapshot.registry.runtimes().len()),
        }
    }
}

/// `GET /admin/registry`.
#[derive(Debug, Serialize, ToSchema)]
struct RegistryView {
    #[serde(flatten)]
    snapshot: SnapshotView,
    /// The last refused reload, if any.
    last_reload_error: Option<ReloadFailureView>,
    /// Reloads that took effect.
    reloads: u64,
    /// Reloads that were refused.
    reload_failures: u64,
}

/// A refused reload.
#[derive(Debug, Serialize, ToSchema)]
struct ReloadFailureView {
    /// Why the manifest was refused.
    error: String,
    /// When it was refused, RFC 3339 in UTC.
    at: String,
}

/// `POST /admin/registry/reload`.
#[derive(Debug, Serialize, ToSchema)]
struct ReloadAnswer {
    /// `reloaded`.
    status: &'static str,
    #[serde(flatten)]
    snapshot: SnapshotView,
}

/// The registry snapshot in force, and how its reloads went.
#[utoipa::path(get, operation_id = "registry_show", path = "/admin/registry", tag = "registry", security(("admin" = [])),
    responses((status = 200, body = RegistryView)))]
async fn show(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<RegistryView>, ApiError> {
    let registry = &state.app.registry;
    let snapshot = match registry.snapshot() {
        Ok(snapshot) => SnapshotView::of(&snapshot),
        Err(_) => SnapshotView {
            hash: None,
            source: None,
            loaded_at: None,
            providers: None,
            runtimes: None,
        },
    };
    let (reloads, reload_failures) = registry.reload_counts();
    Ok(Json(RegistryView {
        snapshot,
        last_reload_error: registry.last_failure().map(|f| ReloadFailureView {
            error: f.error,
            at: time(f.at),
        }),
        reloads,
        reload_failures,
    }))
}

/// Read the manifest again. A manifest that fails validation is refused and the last good
/// snapshot stays in force.
#[utoipa::path(post, operation_id = "registry_reload", path = "/admin/registry/reload", tag = "registry", security(("admin" = [])),
    responses(
        (status = 200, description = "The new snapshot is in force.", body = ReloadAnswer),
        (status = 422, description = "The manifest was refused (`registry_invalid`); `hash_in_force` names the snapshot still in force.", body = ErrorBody),
    ))]
async fn reload(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<ReloadAnswer>, ApiError> {
    let registry = Arc::clone(&state.app.registry);
    // Reading and validating a manifest is blocking work.
    let result = tokio::task::spawn_blocking(move || registry.reload())
        .await
        .unwrap_or_else(|e| Err(format!("reload task failed: {e}")));
    match result {
        Ok(snapshot) => Ok(Json(ReloadAnswer {
            status: "reloaded",
            snapshot: SnapshotView::of(&snapshot),
        })),
        Err(error) => Err(ApiError::RegistryReloadRefused {
            error,
            hash_in_force: state
                .app
                .registry
                .snapshot()
                .ok()
                .map(|s| s.registry.hash().to_owned()),
        }),
    }
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ExplainQuery {
    /// The runtime, as the manifest names it.
    runtime: Option<String>,
    /// The model id, verbatim.
    model: Option<String>,
}

/// What the live registry derives for a runtime and model, with the trace of every rule
/// tried. An ambiguous model is an answer here (200, `outcome: error` with its
/// candidates), not an error: nothing is created.
#[utoipa::path(get, operation_id = "registry_explain", path = "/admin/registry/explain", tag = "registry", security(("admin" = [])),
    params(ExplainQuery),
    responses(
        (status = 200, body = ExplainAnswer),
        (status = 400, description = "`runtime` or `model` is missing (`missing_field`).", body = ErrorBody),
        (status = 503, description = "No registry snapshot is in force (`registry_unavailable`).", body = ErrorBody),
    ))]
pub(super) async fn explain(
    State(state): State<AppState>,
    Query(query): Query<ExplainQuery>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let required = |value: Option<String>, field: &'static str| {
        value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            ApiError::bad_request(
                "runtime and model are required",
                "missing_field",
                Some(field),
                format!("{field} is required"),
            )
        })
    };
    let runtime = required(query.runtime, "runtime")?;
    let model = required(query.model, "model")?;
    let snapshot = state
        .app
        .registry
        .snapshot()
        .map_err(|e| ApiError::RegistryUnavailable(e.to_string()))?;
    let explanation = snapshot.registry.explain(runtime.trim(), &model);
    let mut body = crate::registry_source::explanation_json(&explanation, true);
    body["runtime"] = json!(explanation.runtime);
    body["model"] = json!(explanation.model);
    Ok(Json(body))
}
