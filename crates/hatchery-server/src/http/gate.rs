//! Who may call a route, as types: a handler names its gate among its arguments, and the
//! gate is checked before the handler runs; what the handler needs of the caller (the
//! workspace id, the credential) it gets only from the gate. `tests/route_gates.rs` checks
//! every documented route against the spec's table, so a route that leaves its gate out
//! fails the suite.
//!
//! The gates of the platform API (its §2): the operator's ([`Admin`]); a workspace's own
//! or the operator's, for a workspace named in the path ([`WorkspaceCaller`]); and an
//! agent's, which a workspace that holds no live token yet may pass without one, for its
//! first registration ([`AgentCaller`]).

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use super::{AppState, authorization, bearer, invalid_path};
use crate::app::access::Credential;
use crate::app::workspaces::parse_workspace_id;
use crate::error::ApiError;

/// The operator: the admin token (dev mode: anyone on loopback).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admin;

impl Admin {
    /// The operator's gate where it is decided in a handler (after another check that
    /// must answer first, or on one branch of a route two gates share): the configured
    /// admin token (dev mode: open).
    pub(crate) fn check(
        state: &AppState,
        headers: &axum::http::HeaderMap,
    ) -> Result<Self, ApiError> {
        let authorization = authorization(headers);
        if state.admin.allows(authorization) {
            Ok(Self)
        } else if bearer(authorization).is_none() {
            // No `Bearer ` credential at all (an empty or other scheme counts as none).
            Err(ApiError::AdminAuthRequired)
        } else {
            Err(ApiError::InvalidAdminToken)
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Self::check(state, &parts.headers)
    }
}

/// The path's `{id}`, a workspace id in canonical form: refused with 400 before any gate
/// is asked (a malformed id says nothing about credentials).
#[derive(Debug)]
pub(crate) struct WorkspacePath(pub String);

impl FromRequestParts<AppState> for WorkspacePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        path_workspace_id(parts, state).await.map(Self)
    }
}

/// The workspace named by the path's `{id}`, called with its own token or the admin's.
pub(crate) type WorkspaceCaller = Caller<false>;

/// The workspace named by the path's `{id}`, called by its agent: with a token of its own,
/// or with none while it holds no live token (its first registration).
pub(crate) type AgentCaller = Caller<true>;

/// A workspace and the credential that passed its gate: the agent's gate when `AGENT`
/// ([`AgentCaller`]), the workspace's own otherwise ([`WorkspaceCaller`]). One type for
/// both, so the two gates cannot drift apart in anything but the rule they ask.
#[derive(Debug)]
pub(crate) struct Caller<const AGENT: bool> {
    /// The workspace, its id in canonical form.
    pub id: String,
    /// What the caller presented.
    pub credential: Credential,
}

impl<const AGENT: bool> Caller<AGENT> {
    /// The gate for a workspace named elsewhere than the path (a body, a query, a header).
    pub(crate) async fn check(
        state: &AppState,
        headers: &axum::http::HeaderMap,
        id: String,
    ) -> Result<Self, ApiError> {
        let credential = super::credential(state, headers).await?;
        if AGENT {
            state.app.gate_boot(&credential, &id).await?;
        } else {
            state.app.gate_workspace(&credential, &id)?;
        }
        Ok(Self { id, credential })
    }
}

impl<const AGENT: bool> FromRequestParts<AppState> for Caller<AGENT> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let id = path_workspace_id(parts, state).await?;
        Self::check(state, &parts.headers, id).await
    }
}

/// The path's `{id}` (or `{workspace_id}`), checked to be a workspace id.
async fn path_workspace_id(parts: &mut Parts, state: &AppState) -> Result<String, ApiError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| invalid_path(e.body_text()))?;
    let id = params
        .iter()
        .find_map(|(name, value)| matches!(name, "id" | "workspace_id").then_some(value))
        .ok_or_else(|| {
            ApiError::internal(
                "route without a workspace id",
                "a workspace gate on a route whose path names no {id} or {workspace_id}",
            )
        })?;
    Ok(parse_workspace_id(id)?)
}
