//! `/events`: the persisted event log (newest first, or after a cursor) and live streams:
//! SSE for everyone (`/events/stream`) and for one workspace
//! (`/workspaces/:id/events/stream`), resumable with `Last-Event-ID`.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse as _, Response};
use hatchery_api::events::EventView;
use hatchery_store::EventRow;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gate::{Admin, WorkspaceCaller, WorkspacePath};
use super::views::{Paged, timestamp};
use super::workspaces::WorkspaceId;
use super::{AppState, Query};
use crate::app::workspaces::parse_workspace_id;
use crate::error::{ApiError, ErrorBody};
use crate::event_hub::{Cursor, Delivery};

/// The most events one listing returns without a cursor (the spec's), and with one.
const LIMIT: i64 = 100;
const MAX_CURSOR_LIMIT: i64 = 1000;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(all))
        .routes(routes!(stream_all))
        .routes(routes!(one_workspace))
        .routes(routes!(stream_one))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// An event's `seq`: only the events after it, oldest first.
    #[param(pattern = "^\\s*[0-9]+\\s*$")]
    after: Option<String>,
    /// With `after`: how many at most (100 by default, at most 1000).
    limit: Option<String>,
}

impl ListQuery {
    fn after(&self) -> Result<Option<i64>, ApiError> {
        self.after
            .as_deref()
            .map(|a| super::parse_cursor(a, "after"))
            .transpose()
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// Resume after this event's `seq` (`Last-Event-ID` wins when both are sent).
    #[param(pattern = "^\\s*[0-9]+\\s*$")]
    after: Option<String>,
    /// Only this workspace's events.
    #[param(format = Uuid)]
    workspace_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ResumeQuery {
    /// Resume after this event's `seq` (`Last-Event-ID` wins when both are sent).
    #[param(pattern = "^\\s*[0-9]+\\s*$")]
    after: Option<String>,
}

/// The workspace of `/events/{workspace_id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(
    dead_code,
    reason = "a schema for the OpenAPI document; handlers read the raw text"
)]
struct EventsOf {
    /// The workspace's id.
    #[param(format = Uuid)]
    workspace_id: String,
}

/// The event log: without `after`, the newest 100, newest first; with it, the events
/// after that cursor, oldest first, so a client can page forward without gaps.
#[utoipa::path(get, operation_id = "event_list", path = "/events", tag = "events", security(("admin" = [])), params(ListQuery),
    responses(
        (status = 200, body = Vec<EventView>, headers(("x-hatchery-truncated" = String, description = "`true` when the page stopped at its byte budget (1 MiB of payload) before its row limit. A page read with `after=` continues with `after=` its last seq; one without (the newest first) holds the newest that fit."))),
        (status = 400, description = "`after` is not an event's seq (`invalid_cursor`), or `workspace_id` is not a UUID.", body = ErrorBody),
        (status = 410, description = "Retention deleted events after `after` (`cursor_expired`, with `pruned_through`): re-read the current state and resume from the newest seq of `GET /events`.", body = ErrorBody),
    ))]
async fn all(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
    _admin: Admin,
) -> Result<Paged<EventView>, ApiError> {
    list(&state, None, &query).await
}

/// One workspace's events, as `GET /events` lists them.
#[utoipa::path(get, operation_id = "event_list_workspace", path = "/events/{workspace_id}", tag = "events", security(("admin" = [])),
    params(EventsOf, ListQuery),
    responses(
        (status = 200, body = Vec<EventView>, headers(("x-hatchery-truncated" = String, description = "`true` when the page stopped at its byte budget (1 MiB of payload) before its row limit. A page read with `after=` continues with `after=` its last seq; one without (the newest first) holds the newest that fit."))),
        (status = 400, description = "The id is not a UUID (`invalid_workspace_id`), or `after` is not an event's seq (`invalid_cursor`).", body = ErrorBody),
        (status = 410, description = "Retention deleted events after `after` (`cursor_expired`, with `pruned_through`): re-read the current state and resume from the newest seq of `GET /events`.", body = ErrorBody),
    ))]
async fn one_workspace(
    State(state): State<AppState>,
    WorkspacePath(id): WorkspacePath,
    Query(query): Query<ListQuery>,
    _admin: Admin,
) -> Result<Paged<EventView>, ApiError> {
    list(&state, Some(&id), &query).await
}

/// Without `?after=`: the newest 100, newest first (the spec). With it: the events after
/// that cursor, oldest first, so a client can page forward without gaps. Either way a page
/// bounded by bytes too (`x-hatchery-truncated` when that cut it short).
async fn list(
    state: &AppState,
    workspace_id: Option<&str>,
    query: &ListQuery,
) -> Result<Paged<EventView>, ApiError> {
    let after = query.after()?;
    let limit = match after {
        None => LIMIT,
        Some(_) => query
            .limit
            .as_deref()
            .and_then(|l| l.parse::<i64>().ok())
            .filter(|l| *l > 0)
            .map_or(LIMIT, |l| l.min(MAX_CURSOR_LIMIT)),
    };
    let page = state.app.event_list(workspace_id, after, limit).await?;
    Ok(Paged(
        page.rows.iter().map(event_view).collect(),
        page.truncated,
    ))
}

/// A row of the log as `GET /events` lists it.
fn event_view(e: &EventRow) -> EventView {
    EventView {
        id: e.id.clone(),
        seq: e.seq,
        event_type: e.event_type.clone(),
        workspace_id: e.workspace_id.clone(),
        payload: serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null),
        created_at: timestamp(e.created_at),
    }
}

/// Every event as it happens, as server-sent events (`id:` is the event's seq, `data:`
/// `{"type","timestamp","data"}`), after a first `: ping`. Resumes after `Last-Event-ID`
/// (what `EventSource` sends on reconnect) or `?after=`; a subscriber too slow to keep up
/// is sent `event: lagged` with where to resume, and one whose cursor retention overtook
/// `event: expired` before the stream ends.
#[utoipa::path(get, operation_id = "event_stream", path = "/events/stream", tag = "events", security(("admin" = [])),
    params(StreamQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event's seq.")),
    responses(
        (status = 200, description = "A stream of events that stays open.", body = String, content_type = "text/event-stream"),
        (status = 400, description = "The cursor is not an event's seq (`invalid_cursor`), or `workspace_id` is not a UUID.", body = ErrorBody),
        (status = 410, description = "Retention deleted events after the cursor (`cursor_expired`, with `pruned_through`): re-read the current state and reconnect without a cursor. Once streaming, the same is said as `event: expired` and the stream ends.", body = ErrorBody),
    ))]
async fn stream_all(
    State(state): State<AppState>,
    Query(query): Query<StreamQuery>,
    _admin: Admin,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let filter = query
        .workspace_id
        .as_deref()
        .map(parse_workspace_id)
        .transpose()?;
    let after = super::resume_cursor(&headers, query.after.as_deref())?;
    sse(&state, filter, after, std::future::pending()).await
}

/// One workspace's events as they happen, as `GET /events/stream` sends them.
#[utoipa::path(get, operation_id = "event_stream_workspace", path = "/workspaces/{id}/events/stream", tag = "events",
    security(("admin" = []), ("workspace" = [])),
    params(WorkspaceId, ResumeQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event's seq.")),
    responses(
        (status = 200, description = "A stream of events that stays open.", body = String, content_type = "text/event-stream"),
        (status = 400, description = "The cursor is not an event's seq (`invalid_cursor`).", body = ErrorBody),
        (status = 404, description = "`workspace not found`.", body = ErrorBody),
        (status = 410, description = "Retention deleted events after the cursor (`cursor_expired`, with `pruned_through`): re-read the current state and reconnect without a cursor. Once streaming, the same is said as `event: expired` and the stream ends.", body = ErrorBody),
    ))]
async fn stream_one(
    State(state): State<AppState>,
    Query(query): Query<ResumeQuery>,
    WorkspaceCaller { id, credential }: WorkspaceCaller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.app.workspace_exists(&id).await?;
    let after = super::resume_cursor(&headers, query.after.as_deref())?;
    let revoked = super::revocation(&state, &headers, &credential);
    sse(&state, Some(id), after, revoked).await
}

/// A `text/event-stream` of the events after `after`, or, without it, of those from now
/// on. A batch the subscriber wants whole is written as its prebuilt bytes: a busy stream
/// costs one write per batch, not one per event. The stream ends when `revoked` resolves.
async fn sse(
    state: &AppState,
    filter: Option<String>,
    after: Option<i64>,
    revoked: impl Future<Output = ()> + Send + 'static,
) -> Result<Response, ApiError> {
    let cursor = Cursor::open(&state.app.hub, state.app.store.clone(), filter, after).await?;
    let greeting = futures_util::stream::once(async {
        Ok::<_, Infallible>(Bytes::from_static(b": ping\n\n"))
    });
    let deliveries = futures_util::stream::unfold(cursor, |mut cursor| async move {
        let delivery = cursor.next(KEEP_ALIVE).await?;
        Some((Ok::<_, Infallible>(sse_bytes(delivery)), cursor))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(futures_util::StreamExt::take_until(
            futures_util::StreamExt::chain(greeting, deliveries),
            revoked,
        )),
    )
        .into_response())
}

/// A comment line this often keeps idle connections (and proxies) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn sse_bytes(delivery: Delivery) -> Bytes {
    match delivery {
        Delivery::Whole(batch) => batch.sse.clone(),
        Delivery::Events(events) => crate::event_hub::sse_frames(&events),
        Delivery::Lagged {
            missed,
            resume_after,
        } => {
            let notice = json!({"missed": missed, "resume_after": resume_after});
            Bytes::from(format!("event: lagged\ndata: {notice}\n\n"))
        }
        Delivery::Idle => Bytes::from_static(b": keep-alive\n\n"),
        Delivery::Expired { pruned_through } => {
            let error = crate::app::events::cursor_expired(pruned_through);
            let notice = json!({
                "error": error.to_string(),
                "code": "cursor_expired",
                "pruned_through": pruned_through,
            });
            Bytes::from(format!("event: expired\ndata: {notice}\n\n"))
        }
    }
}
