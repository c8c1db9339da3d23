//! `POST /workspaces/:id/a2a`: a message to a workspace's agent, from the operator or from a
//! workspace that may reach it (see `app::a2a`).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Json;
use hatchery_api::a2a::{Notify, QUEUE_HEADER, QUEUED_MESSAGE, Queued, QueuedMessageView};
use hatchery_store::QueuedMessageRow;

use super::gate::{Admin, AgentCaller, WorkspaceCaller, WorkspacePath};
use super::views::{StatusAnswer, timestamp};
use super::workspaces::WorkspaceId;
use super::{AppState, json_body, read_body};
use crate::app::a2a::{A2aAnswer, A2aCall, Caller};
use crate::app::a2a_queue::A2aOutcome;
use crate::app::workspaces::parse_workspace_id;
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send))
        .routes(routes!(notify))
        .routes(routes!(queue_list))
}

/// Send a message to the workspace's agent and relay its answer. Without `X-Workspace-ID`
/// the caller is the operator (admin token; dev mode: open). With it, the caller is that
/// workspace: it presents its own token and must be able to reach the target (itself, its
/// parent, children, siblings, ancestors; spec §6). A body without `jsonrpc` is wrapped
/// into a JSON-RPC 2.0 request (`method` defaults to `message/send`); a message without
/// `messageId` gets one. The agent never sees the caller's headers.
///
/// With `X-Hatchery-Queue: true`, a `message/send` the target cannot take now (503, 429,
/// or its agent unreachable, 502) is queued instead (202) and delivered, in order, when it
/// can (at least once; within 24 hours, else it fails `expired`); its answer goes to the
/// activity log. The same `messageId` queued again answers the same `queue_id`.
#[utoipa::path(post, operation_id = "workspace_a2a", path = "/workspaces/{id}/a2a", tag = "a2a",
    security(("admin" = []), ("workspace" = [])),
    params(WorkspaceId, ("X-Workspace-ID" = Option<String>, Header, description = "The calling workspace; absent, the caller is the operator."),
        ("X-Hatchery-Queue" = Option<bool>, Header, description = "`true`: queue a `message/send` the target cannot take now (not up, busy, unreachable), or that would overtake messages already queued for it, and answer 202; only `message/send` can be queued.")),
    request_body(content = Object, description = "A JSON-RPC 2.0 request (`message/send`, `message/stream`), or `{\"method\", \"params\"}`, which is wrapped.", content_type = "application/json"),
    responses(
        (status = 200, description = "The agent's JSON-RPC response (a result or a JSON-RPC error, passed through untouched), or for `message/stream` its Server-Sent Events, relayed as they come; a stream that goes silent ends with a JSON-RPC error event.",
            content((Object = "application/json"), (String = "text/event-stream"))),
        (status = 202, body = Queued, description = "With `X-Hatchery-Queue: true`: `{\"queued\": true, \"queue_id\", \"queue_depth\", \"message\"}`; the message is stored and delivered when the target can take it (see `GET /workspaces/{id}/a2a/queue`)."),
        (status = 400, description = "`invalid JSON` (not a JSON object), an id is not a UUID, `X-Hatchery-Queue` neither `true` nor `false` (`invalid_header`), or on a method other than `message/send` (`not_queueable`, naming the header).", body = ErrorBody),
        (status = 401, description = "No credential, or not the caller's own (`admin_auth_required`, `invalid_workspace_token`, …).", body = ErrorBody),
        (status = 403, description = "`access denied: workspaces cannot communicate per hierarchy rules` (`not_reachable`).", body = ErrorBody),
        (status = 404, description = "`workspace not found`: unknown or removed.", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB.", body = ErrorBody),
        (status = 429, description = "`agent_busy`: the workspace already has its `max_concurrent_tasks` messages in flight, or the calling workspace 32; `Retry-After` says when to ask again.", body = ErrorBody),
        (status = 502, description = "The agent could not be reached (`agent_unreachable`) or did not answer JSON-RPC (`agent_bad_answer`); `workspace` names it, `detail` says what happened.", body = ErrorBody),
        (status = 503, description = "`workspace not available`: its agent is not up; `status` says why (`provisioning`, `paused`, `offline`, …), `Retry-After` when to ask again.", body = ErrorBody),
        (status = 504, description = "The agent sent nothing within the idle timeout (`agent_timeout`).", body = ErrorBody),
    ))]
async fn send(
    State(state): State<AppState>,
    WorkspacePath(target): WorkspacePath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = if let Some(id) = calling_workspace(&headers)? {
        Caller::Workspace(AgentCaller::check(&state, &headers, id).await?.id)
    } else {
        Admin::check(&state, &headers)?;
        Caller::Operator
    };
    let queue = queue_asked(&headers)?;
    let body = read_body(body, "invalid JSON").await?;
    let call = A2aCall {
        target,
        caller,
        body,
    };
    let answer = match state.app.a2a_send(call, queue).await? {
        A2aOutcome::Answer(answer) => answer,
        A2aOutcome::Queued(enqueued) => {
            let queued = Queued {
                queued: true,
                queue_id: enqueued.row.id,
                queue_depth: enqueued.depth,
                message: QUEUED_MESSAGE.to_owned(),
            };
            return Ok((StatusCode::ACCEPTED, Json(queued)).into_response());
        }
    };
    Ok(match answer {
        A2aAnswer::Json { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = (status, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        A2aAnswer::Stream(events) => {
            let mut response = Body::from_stream(events).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    })
}

/// The workspace's agent tells the operator something outside any call (an interim
/// update, a result that came later): broadcast as `AGENT_MESSAGE`, kept in the activity
/// log where the chat history reads it (`a2a_receive`, method `notify`, no source).
#[utoipa::path(post, operation_id = "workspace_notify", path = "/workspaces/{id}/notify", tag = "a2a",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId), request_body = Notify,
    responses(
        (status = 200, body = StatusAnswer, description = "`{\"status\": \"sent\"}`."),
        (status = 400, description = "`message` missing or empty, or an attachment without `uri` or `name` (`invalid_request_body`, naming the field).", body = ErrorBody),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 413, description = "`message` larger than 64 KiB, or the body larger than 1 MiB.", body = ErrorBody),
    ))]
async fn notify(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
    body: Body,
) -> Result<Json<StatusAnswer>, ApiError> {
    let notice: Notify = json_body(body, "message is required").await?;
    state.app.notify(&id, notice).await?;
    Ok(Json(StatusAnswer { status: "sent" }))
}

/// The messages queued for the workspace (with `X-Hatchery-Queue`), newest first (at
/// most 50): queued, being delivered, delivered or failed (with the reason). Agents'
/// answers are in its activity log.
#[utoipa::path(get, operation_id = "workspace_a2a_queue", path = "/workspaces/{id}/a2a/queue", tag = "a2a",
    security(("admin" = []), ("workspace" = [])), params(WorkspaceId),
    responses(
        (status = 200, body = Vec<QueuedMessageView>),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
    ))]
async fn queue_list(
    State(state): State<AppState>,
    WorkspaceCaller { id, .. }: WorkspaceCaller,
) -> Result<Json<Vec<QueuedMessageView>>, ApiError> {
    let rows = state.app.a2a_queue_list(&id).await?;
    Ok(Json(rows.iter().map(queued_view).collect()))
}

fn queued_view(row: &QueuedMessageRow) -> QueuedMessageView {
    QueuedMessageView {
        id: row.id.clone(),
        caller: row.caller.clone(),
        method: row.method.clone(),
        message_id: row.message_id.clone(),
        status: row.status,
        attempts: row.attempts,
        error: row.error.clone(),
        created_at: timestamp(row.created_at),
        updated_at: timestamp(row.updated_at),
    }
}

/// Whether `X-Hatchery-Queue` asks for queueing: `true` or `false`; anything else is
/// refused, naming the header, rather than read as "no".
fn queue_asked(headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(value) = headers.get(QUEUE_HEADER) else {
        return Ok(false);
    };
    match value.to_str().map(str::trim) {
        Ok(text) if text.eq_ignore_ascii_case("true") => Ok(true),
        Ok(text) if text.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ApiError::bad_request(
            "invalid request header",
            "invalid_header",
            Some("X-Hatchery-Queue"),
            "X-Hatchery-Queue must be true or false",
        )),
    }
}

/// The workspace named by `X-Workspace-ID`, if the header is there.
fn calling_workspace(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("x-workspace-id") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    Ok(Some(parse_workspace_id(text)?))
}
