//! `/settings/secrets` and `/workspaces/:id/secrets`: secrets by name; values go in,
//! never out.

use serde::{Deserialize, Serialize};

/// The body that sets a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetSecret {
    /// Its name: `^[A-Z][A-Z0-9_]{0,127}$`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Z][A-Z0-9_]{0,127}$"))]
    pub key: String,
    /// Its value, non-empty; stored encrypted, never shown again.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub value: String,
}

/// A secret, by name: the value is never listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretListed {
    /// Its name: the environment variable an agent gets its value in (a workspace's
    /// secret wins over a global one of the same name).
    pub key: String,
    /// Always true.
    pub has_value: bool,
    /// `workspace` or `global`.
    pub scope: String,
    /// When it was first set.
    pub created_at: String,
    /// When it was last set.
    pub updated_at: String,
}

/// A secret saved or deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretChanged {
    /// `saved` or `deleted`.
    pub status: String,
    /// Its name: the environment variable an agent gets its value in.
    pub key: String,
    /// `global` for a global secret; absent for a workspace's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}
