//! The one error type of the HTTP layer and its one mapping to status codes and bodies.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What a handler can fail with. The message is what clients see; internal detail goes
/// to the log.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No admin credential.
    #[error("admin auth required")]
    AdminAuthRequired,
    /// A wrong admin credential.
    #[error("invalid admin auth token")]
    InvalidAdminToken,
    /// A registry reload was refused; the last good snapshot stays in force.
    #[error("{error}")]
    RegistryReloadRefused {
        /// Why the new manifest was refused.
        error: String,
        /// The hash still in force.
        hash_in_force: String,
    },
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, body) = match self {
            Self::AdminAuthRequired => (
                StatusCode::UNAUTHORIZED,
                json!({"error": message, "code": "admin_auth_required"}),
            ),
            Self::InvalidAdminToken => (
                StatusCode::UNAUTHORIZED,
                json!({"error": message, "code": "invalid_admin_token"}),
            ),
            Self::RegistryReloadRefused { hash_in_force, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": message, "code": "registry_invalid", "hash_in_force": hash_in_force}),
            ),
        };
        (status, Json(body)).into_response()
    }
}
