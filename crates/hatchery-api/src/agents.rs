//! `/registry/*` and workspace tokens: what an agent is answered when it registers, and the
//! tokens issued to a workspace.

use serde::{Deserialize, Serialize};

/// `POST /registry/register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterAnswer {
    /// `registered`.
    pub status: String,
    /// The workspace's token, only when it had none before this call (shown once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
}

/// A token issued to a workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    /// The token; shown once.
    pub auth_token: String,
    /// Its workspace.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub workspace_id: String,
    /// A reminder to keep it (`POST /workspaces/:id/tokens` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `POST /admin/workspaces/:id/bootstrap-token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BootstrapAnswer {
    /// The single-use token an agent's first registration presents.
    pub bootstrap_token: String,
    /// Its workspace.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub workspace_id: String,
    /// When it stops working (the workspace's provisioning deadline).
    pub expires_at: String,
}

/// `GET /workspaces/:id/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    /// The live tokens, newest first.
    pub tokens: Vec<TokenListed>,
    /// How many live tokens there are in all.
    pub count: i64,
}

/// A live token, by its display prefix: the token itself is never stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenListed {
    /// Its id (what a revoke names).
    pub id: String,
    /// Its first 8 characters.
    pub prefix: String,
    /// When it was issued.
    pub created_at: String,
    /// When it was last used, if ever.
    pub last_used_at: Option<String>,
}
