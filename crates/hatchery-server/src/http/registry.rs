//! The registry's admin view and reload.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::views::time;
use super::{AppState, require_admin};
use crate::error::ApiError;
use crate::registry_source::Snapshot;

pub(super) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let registry = &state.app.registry;
    let mut body = match registry.snapshot() {
        Ok(snapshot) => snapshot_view(&snapshot),
        Err(_) => json!({"hash": null, "source": null, "loaded_at": null}),
    };
    let (reloads, failures) = registry.reload_counts();
    body["last_reload_error"] = registry
        .last_failure()
        .map_or(Value::Null, |f| json!({"error": f.error, "at": time(f.at)}));
    body["reloads"] = json!(reloads);
    body["reload_failures"] = json!(failures);
    Ok(Json(body))
}

pub(super) async fn reload(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let registry = Arc::clone(&state.app.registry);
    // Reading and validating a manifest is blocking work.
    let result = tokio::task::spawn_blocking(move || registry.reload())
        .await
        .unwrap_or_else(|e| Err(format!("reload task failed: {e}")));
    match result {
        Ok(snapshot) => {
            let mut body = snapshot_view(&snapshot);
            body["status"] = json!("reloaded");
            Ok(Json(body))
        }
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

#[derive(Debug, serde::Deserialize)]
pub(super) struct ExplainQuery {
    runtime: Option<String>,
    model: Option<String>,
}

/// `GET /admin/registry/explain?runtime=&model=`: what the live registry derives for a
/// runtime and model, with the trace of every rule tried. An ambiguous model is an answer
/// here (200, `outcome: ambiguous` with its candidates), not an error: nothing is created.
pub(super) async fn explain(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<ExplainQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
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

fn snapshot_view(snapshot: &Snapshot) -> Value {
    json!({
        "hash": snapshot.registry.hash(),
        "source": snapshot.source,
        "loaded_at": time(snapshot.loaded_at),
        "providers": snapshot.registry.providers().len(),
        "runtimes": snapshot.registry.runtimes().len(),
    })
}
