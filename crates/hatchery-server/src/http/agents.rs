//! The agent side of the platform API: `/registry/*` (register, heartbeat, update-card,
//! discover, peers, check-access) and workspace tokens (test-token in dev mode, bootstrap
//! token, `/workspaces/:id/tokens`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hatchery_api::agents::{BootstrapAnswer, IssuedToken, RegisterAnswer, TokenList, TokenListed};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gate::{Admin, AgentCaller, WorkspaceCaller, WorkspacePath};
use super::views::{Paged, StatusAnswer, WorkspaceBrief, timestamp, workspace_brief};
use super::workspaces::WorkspaceId;
use super::{AppState, Path, Query, credential, json_body};
use crate::app::a2a::reachable_url;
use crate::app::access::Credential;
use crate::app::agents::{
    Heartbeat, INVALID_BODY, Register, UpdateCard, body_id, heartbeat_id, register_id,
    update_card_id,
};
use crate::app::workspaces::parse_workspace_id;
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(heartbeat))
        .routes(routes!(update_card))
        .routes(routes!(discover))
        .routes(routes!(peers))
        .routes(routes!(check_access))
        .routes(routes!(test_token))
        .routes(routes!(bootstrap_token))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

fn token_id_of(credential: &Credential) -> Option<String> {
    match credential {
        Credential::Token(token) => Some(token.token_id.clone()),
        _ => None,
    }
}

/// An agent announces itself: its URL and agent card. The workspace goes `online`. The
/// first registration presents the bootstrap token the agent was started with.
#[utoipa::path(post, operation_id = "agent_register", path = "/registry/register", tag = "agents", security(("workspace" = [])),
    request_body = Register,
    responses(
        (status = 200, body = RegisterAnswer),
        (status = 400, description = "`invalid request body`: a missing field, or a refused URL.", body = ErrorBody),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 409, description = "The workspace is paused or hibernated (`workspace_not_registrable`).", body = ErrorBody),
        (status = 410, description = "The workspace is removed (`workspace_removed`).", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB, `agent_card` larger than 64 KiB or `url` longer than 2 KiB (`payload_too_large`, with `field` and `limit_bytes`).", body = ErrorBody),
    ))]
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RegisterAnswer>, ApiError> {
    let body: Register = json_body(body, INVALID_BODY).await?;
    let id = register_id(&body)?;
    let credential = credential(&state, &headers).await?;
    let auth = state.app.gate_register(&credential, &id).await?;
    let auth_token = state.app.register(&id, auth, body).await?;
    Ok(Json(RegisterAnswer {
        status: "registered".to_owned(),
        auth_token,
    }))
}

/// An agent's heartbeat: its error rate, tasks and uptime. Keeps it alive and moves it
/// between `online` and `degraded`.
#[utoipa::path(post, operation_id = "agent_heartbeat", path = "/registry/heartbeat", tag = "agents", security(("workspace" = [])),
    request_body = Heartbeat,
    responses(
        (status = 200, body = StatusAnswer),
        (status = 400, description = "A value out of range; `field` names it.", body = ErrorBody),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 410, description = "The workspace is removed (`workspace_removed`).", body = ErrorBody),
    ))]
async fn heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<StatusAnswer>, ApiError> {
    let body: Heartbeat = json_body(body, INVALID_BODY).await?;
    let id = heartbeat_id(&body)?;
    let credential = AgentCaller::check(&state, &headers, id.clone())
        .await?
        .credential;
    state
        .app
        .heartbeat(&id, token_id_of(&credential), &body)
        .await?;
    Ok(Json(StatusAnswer { status: "ok" }))
}

/// An agent replaces its agent card.
#[utoipa::path(post, operation_id = "agent_update_card", path = "/registry/update-card", tag = "agents", security(("workspace" = [])),
    request_body = UpdateCard,
    responses(
        (status = 200, body = StatusAnswer),
        (status = 400, description = "`invalid request body`: a missing field.", body = ErrorBody),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 410, description = "The workspace is removed (`workspace_removed`).", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB, or `agent_card` larger than 64 KiB (`payload_too_large`, with `field` and `limit_bytes`).", body = ErrorBody),
    ))]
async fn update_card(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<StatusAnswer>, ApiError> {
    let body: UpdateCard = json_body(body, INVALID_BODY).await?;
    let id = update_card_id(&body)?;
    AgentCaller::check(&state, &headers, id.clone()).await?;
    state.app.update_card(&id, body).await?;
    Ok(Json(StatusAnswer { status: "updated" }))
}

/// The CALLER gate: `X-Workspace-ID` is required, and the caller's bearer must be its own.
async fn require_caller(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let caller = headers
        .get("x-workspace-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest {
            message: "X-Workspace-ID header is required".to_owned(),
            code: "caller_required",
            field: None,
            detail: None,
        })?;
    let caller = parse_workspace_id(caller)?;
    AgentCaller::check(state, headers, caller.clone()).await?;
    Ok(caller)
}

/// `GET /registry/discover/:id`.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "a schema for the OpenAPI document; never constructed"
)]
struct Discovered {
    /// The target workspace.
    #[schema(format = Uuid)]
    id: String,
    /// Where its agent serves A2A.
    url: String,
    /// Its name.
    name: String,
}

/// Where a workspace the caller can reach serves A2A. The caller names itself in
/// `X-Workspace-ID` and presents its own token.
#[utoipa::path(get, operation_id = "agent_discover", path = "/registry/discover/{id}", tag = "agents", security(("workspace" = [])),
    params(WorkspaceId, ("X-Workspace-ID" = String, Header, description = "The calling workspace.")),
    responses(
        (status = 200, body = Discovered),
        (status = 400, description = "`X-Workspace-ID header is required` (`caller_required`), or an id is not a UUID.", body = ErrorBody),
        (status = 403, description = "`not authorized to discover this workspace` (`not_reachable`).", body = ErrorBody),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 503, description = "`workspace not available` (no URL, or not up), with its `status`.", body = ErrorBody),
    ))]
async fn discover(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let target = parse_workspace_id(&id)?;
    let caller = require_caller(&state, &headers).await?;
    Ok(Json(
        state
            .app
            .discover(&caller, &target, &caller_base(&headers))
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PeersQuery {
    /// Keep only peers whose name or role contains this, ignoring case.
    q: Option<String>,
    /// Continue after this peer (an id): the last one of the previous page.
    #[param(format = Uuid)]
    after: Option<String>,
}

/// The workspace's direct relations: its siblings (root siblings for a root), then its
/// children, then its parent; never removed ones. A page of about 1 MiB (URLs, agent
/// cards, names); `after=` the last id continues.
#[utoipa::path(get, operation_id = "agent_peers", path = "/registry/{id}/peers", tag = "agents",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId, PeersQuery),
    responses(
        (status = 200, body = Vec<WorkspaceBrief>, headers(("x-hatchery-truncated" = String, description = "`true` when the page stopped at its byte budget (1 MiB of URLs, agent cards, names and roles): continue with `after=` its last id."))),
        (status = 400, description = "`after` is not a workspace id (`invalid_cursor`).", body = ErrorBody),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 410, description = "`after` is no longer a peer, purged or moved elsewhere (`cursor_expired`): list again without it.", body = ErrorBody),
    ))]
async fn peers(
    State(state): State<AppState>,
    Query(query): Query<PeersQuery>,
    headers: HeaderMap,
    AgentCaller { id, .. }: AgentCaller,
) -> Result<Paged<WorkspaceBrief>, ApiError> {
    let page = state
        .app
        .peers(&id, query.q.as_deref(), query.after.as_deref())
        .await?;
    let base = caller_base(&headers);
    let peers = page
        .rows
        .iter()
        .map(|row| {
            let mut peer = workspace_brief(row);
            peer.url = reachable_url(&row.url, &row.id, &base);
            peer
        })
        .collect();
    Ok(Paged(peers, page.truncated))
}

/// How the caller reaches this control plane (`http://` and the `Host` it asked), for the
/// URLs that stand for sandboxed agents.
fn caller_base(headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The body of `POST /registry/check-access`.
#[derive(Debug, Deserialize, ToSchema)]
struct CheckAccess {
    /// The asking workspace (its own token, or the admin's, is required).
    #[schema(required, value_type = String, format = Uuid)]
    caller_id: Option<String>,
    /// The workspace it wants to reach.
    #[schema(required, value_type = String, format = Uuid)]
    target_id: Option<String>,
}

/// `POST /registry/check-access`.
#[derive(Debug, Serialize, ToSchema)]
struct AccessAnswer {
    /// Whether the caller may reach the target.
    allowed: bool,
}

/// Whether one workspace may reach another: itself, siblings, ancestors and descendants;
/// an unknown or removed one on either side never.
#[utoipa::path(post, operation_id = "agent_check_access", path = "/registry/check-access", tag = "agents",
    security(("admin" = []), ("workspace" = [])), request_body = CheckAccess,
    responses(
        (status = 200, body = AccessAnswer),
        (status = 400, description = "`invalid request body`: a missing or non-UUID id.", body = ErrorBody),
    ))]
async fn check_access(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AccessAnswer>, ApiError> {
    let body: CheckAccess = json_body(body, INVALID_BODY).await?;
    let caller = body_id(body.caller_id.as_deref(), "caller_id")?;
    let target = body_id(body.target_id.as_deref(), "target_id")?;
    // Not a topology oracle: only the caller itself (or the admin) may ask.
    WorkspaceCaller::check(&state, &headers, caller.clone()).await?;
    let allowed = state.app.reachable(&caller, &target).await?;
    Ok(Json(AccessAnswer { allowed }))
}

/// A new token for a workspace, for local scripts: dev mode only, where admin routes need
/// no credential. Outside dev mode it answers 404 `not found` whoever asks; mint a token
/// with the admin token at `POST /workspaces/{id}/tokens` instead.
#[utoipa::path(get, operation_id = "token_test", path = "/admin/workspaces/{id}/test-token", tag = "agents",
    security(("admin" = [])), params(WorkspaceId),
    responses(
        (status = 200, body = IssuedToken),
        (status = 404, description = "`workspace not found`; `not found` (`not_found`) outside dev mode.", body = ErrorBody),
        (status = 410, description = "The workspace is removed (`workspace_removed`).", body = ErrorBody),
        (status = 429, description = "`maximum 50 active tokens per workspace`.", body = ErrorBody),
    ))]
async fn test_token(
    State(state): State<AppState>,
    WorkspacePath(id): WorkspacePath,
    headers: HeaderMap,
) -> Result<Json<IssuedToken>, ApiError> {
    // The spec's "must differ": Molecule serves it unless told it is production.
    if !state.app.dev {
        return Err(ApiError::NotFound {
            message: "not found".into(),
            code: "not_found",
        });
    }
    Admin::check(&state, &headers)?;
    let auth_token = state.app.token_issue(&id).await?;
    Ok(Json(IssuedToken {
        auth_token,
        workspace_id: id,
        message: None,
    }))
}

/// A bootstrap token for a workspace that is provisioning: what an agent started outside
/// hatchery presents on its first registration.
#[utoipa::path(post, operation_id = "token_bootstrap", path = "/admin/workspaces/{id}/bootstrap-token", tag = "agents",
    security(("admin" = [])), params(WorkspaceId),
    responses(
        (status = 201, body = BootstrapAnswer),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 409, description = "The workspace is not provisioning.", body = ErrorBody),
        (status = 410, description = "The workspace is removed (`workspace_removed`).", body = ErrorBody),
    ))]
async fn bootstrap_token(
    State(state): State<AppState>,
    WorkspacePath(id): WorkspacePath,
    _admin: Admin,
) -> Result<(StatusCode, Json<BootstrapAnswer>), ApiError> {
    let (bootstrap_token, expires_at) = state.app.bootstrap_issue(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(BootstrapAnswer {
            bootstrap_token,
            workspace_id: id,
            expires_at: timestamp(expires_at),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TokensQuery {
    /// 1–200 (50 by default; other values mean 50).
    limit: Option<String>,
    /// How many to skip (0 by default).
    offset: Option<String>,
}

/// The workspace's live tokens.
#[utoipa::path(get, operation_id = "token_list", path = "/workspaces/{id}/tokens", tag = "agents",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId, TokensQuery),
    responses(
        (status = 200, body = TokenList),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
    ))]
async fn list_tokens(
    State(state): State<AppState>,
    Query(query): Query<TokensQuery>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
) -> Result<Json<TokenList>, ApiError> {
    let limit = query
        .limit
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| (1..=200).contains(l))
        .unwrap_or(50);
    let offset = query
        .offset
        .and_then(|o| o.parse::<i64>().ok())
        .filter(|o| *o >= 0)
        .unwrap_or(0);
    let (tokens, count) = state.app.token_list(&id, limit, offset).await?;
    let tokens = tokens
        .iter()
        .map(|t| TokenListed {
            id: t.id.clone(),
            prefix: t.prefix.clone(),
            created_at: timestamp(t.created_at),
            last_used_at: t.last_used_at.map(timestamp),
        })
        .collect();
    Ok(Json(TokenList { tokens, count }))
}

/// Issue one more token for the workspace; the others stay valid.
#[utoipa::path(post, operation_id = "token_create", path = "/workspaces/{id}/tokens", tag = "agents",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    responses(
        (status = 201, body = IssuedToken),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 410, description = "The workspace is removed (`workspace_removed`).", body = ErrorBody),
        (status = 429, description = "`maximum 50 active tokens per workspace`.", body = ErrorBody),
    ))]
async fn create_token(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    let auth_token = state.app.token_issue(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken {
            auth_token,
            workspace_id: id,
            message: Some("store this token now: it is shown once".to_owned()),
        }),
    ))
}

/// The workspace and token of a revoke.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(
    dead_code,
    reason = "a schema for the OpenAPI document; handlers read the raw text"
)]
struct TokenOf {
    /// The workspace's id.
    #[param(format = Uuid)]
    id: String,
    /// The token's id.
    token_id: String,
}

/// Revoke one of the workspace's tokens.
#[utoipa::path(delete, operation_id = "token_revoke", path = "/workspaces/{id}/tokens/{token_id}", tag = "agents",
    security(("admin" = []), ("workspace" = [])), params(TokenOf),
    responses(
        (status = 200, body = StatusAnswer),
        (status = 404, description = "`workspace not found`, or `token not found or already revoked`.", body = ErrorBody),
    ))]
async fn revoke_token(
    State(state): State<AppState>,
    Path((id, token_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<StatusAnswer>, ApiError> {
    let id = parse_workspace_id(&id)?;
    WorkspaceCaller::check(&state, &headers, id.clone()).await?;
    state.app.token_revoke(&id, &token_id).await?;
    Ok(Json(StatusAnswer { status: "revoked" }))
}
