//! The server itself: `/health`.

use serde::{Deserialize, Serialize};

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthAnswer {
    /// Always `ok`.
    pub status: String,
    /// Present (true) only when the server runs in dev mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_mode: Option<bool>,
}
