//! `/events`: the persisted event log (newest first, or after a cursor) and live streams:
//! SSE for everyone (`/events/stream`) and for one workspace
//! (`/workspaces/:id/events/stream`), resumable with `Last-Event-ID`.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use hatchery_store::EventRow;
use serde::Deserialize;
use serde_json::{Value, json};

use super::views::timestamp;
use super::{AppState, require_admin, require_workspace};
use crate::app::store_error;
use crate::app::workspaces::parse_workspace_id;
use crate::error::ApiError;
use crate::event_hub::{Cursor, Delivery};

/// The most events one listing returns without a cursor (the spec's), and with one.
const LIMIT: i64 = 100;
const MAX_CURSOR_LIMIT: i64 = 1000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/events", get(all))
        .route("/events/stream", get(stream_all))
        .route("/events/{workspace_id}", get(one_workspace))
        .route("/workspaces/{id}/events/stream", get(stream_one))
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<String>,
    workspace_id: Option<String>,
}

impl ListQuery {
    fn after(&self) -> Result<Option<i64>, ApiError> {
        self.after
            .as_deref()
            .map(|a| super::parse_cursor(a, "after"))
            .transpose()
    }
}

async fn all(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&state, &headers)?;
    list(&state, None, &query).await
}

async fn one_workspace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_admin(&state, &headers)?;
    list(&state, Some(&id), &query).await
}

/// Without `?after=`: the newest 100, newest first (the spec). With it: the events after
/// that cursor, oldest first, so a client can page forward without gaps.
async fn list(
    state: &AppState,
    workspace_id: Option<&str>,
    query: &ListQuery,
) -> Result<Json<Value>, ApiError> {
    let read = store_error("failed to list events");
    let rows = match query.after()? {
        None => state
            .app
            .store
            .event_list(workspace_id, LIMIT)
            .await
            .map_err(read)?,
        Some(after) => {
            let limit = query
                .limit
                .as_deref()
                .and_then(|l| l.parse::<i64>().ok())
                .filter(|l| *l > 0)
                .map_or(LIMIT, |l| l.min(MAX_CURSOR_LIMIT));
            state
                .app
                .store
                .event_list_after(after, workspace_id, limit)
                .await
                .map_err(read)?
        }
    };
    Ok(Json(Value::Array(rows.iter().map(event_view).collect())))
}

fn event_view(e: &EventRow) -> Value {
    json!({
        "id": e.id,
        "seq": e.seq,
        "event_type": e.event_type,
        "workspace_id": e.workspace_id,
        "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null),
        "created_at": timestamp(e.created_at),
    })
}

async fn stream_all(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let filter = query
        .workspace_id
        .as_deref()
        .map(parse_workspace_id)
        .transpose()?;
    let after = super::resume_cursor(&headers, query.after.as_deref())?;
    sse(&state, filter, after).await
}

async fn stream_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    state.app.workspace_exists(&id).await?;
    let after = super::resume_cursor(&headers, query.after.as_deref())?;
    sse(&state, Some(id), after).await
}

/// A `text/event-stream` of the events after `after`, or, without it, of those from now
/// on. A batch the subscriber wants whole is written as its prebuilt bytes: a busy stream
/// costs one write per batch, not one per event.
async fn sse(
    state: &AppState,
    filter: Option<String>,
    after: Option<i64>,
) -> Result<Response, ApiError> {
    let cursor = Cursor::open(&state.app.hub, state.app.store.clone(), filter, after)
        .await
        .map_err(store_error("failed to open the event stream"))?;
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
        Body::from_stream(futures_util::StreamExt::chain(greeting, deliveries)),
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
    }
}
