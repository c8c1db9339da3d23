//! HTTP routes: health and the registry's admin view. Handlers extract, call one
//! function, convert the result.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::auth::AdminAuth;
use crate::error::ApiError;
use crate::registry_source::{LiveRegistry, Snapshot};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The provider registry in force.
    pub registry: Arc<LiveRegistry>,
    /// How admin requests are checked.
    pub admin: AdminAuth,
    /// Development mode is on.
    pub dev: bool,
}

/// The router with every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/admin/registry", get(registry_show))
        .route("/admin/registry/reload", post(registry_reload))
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    if state.dev {
        Json(json!({"status": "ok", "dev_mode": true}))
    } else {
        Json(json!({"status": "ok"}))
    }
}

/// The first `Authorization` header (clients may send two; the first counts).
fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let authorization = headers
        .get_all("authorization")
        .iter()
        .next()
        .and_then(|v| v.to_str().ok());
    if state.admin.allows(authorization) {
        Ok(())
    } else if authorization.is_none() {
        Err(ApiError::AdminAuthRequired)
    } else {
        Err(ApiError::InvalidAdminToken)
    }
}

async fn registry_show(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let snapshot = state.registry.current();
    let last_failure = state.registry.last_failure().map(
        |f| json!({"error": f.error, "at": humantime::format_rfc3339_seconds(f.at).to_string()}),
    );
    let mut body = snapshot_view(&snapshot);
    body["last_reload_error"] = last_failure.unwrap_or(Value::Null);
    Ok(Json(body))
}

async fn registry_reload(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    let registry = Arc::clone(&state.registry);
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
            hash_in_force: state.registry.current().registry.hash().to_owned(),
        }),
    }
}

fn snapshot_view(snapshot: &Snapshot) -> Value {
    json!({
        "hash": snapshot.registry.hash(),
        "source": snapshot.source,
        "loaded_at": humantime::format_rfc3339_seconds(snapshot.loaded_at).to_string(),
        "providers": snapshot.registry.providers().len(),
        "runtimes": snapshot.registry.runtimes().len(),
    })
}
