//! `/events`: the persisted event log (newest first, or after a cursor) and live streams:
//! SSE for everyone (`/events/stream`) and for one workspace
//! (`/workspaces/:id/events/stream`), resumable with `Last-Event-ID`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use hatchery_store::{EventRow, Store};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::views::timestamp;
use super::{AppState, require_admin, require_workspace};
use crate::app::store_error;
use crate::app::workspaces::parse_workspace_id;
use crate::error::ApiError;
use crate::event_hub::{Batch, StreamEvent};

/// The most events one listing returns without a cursor (the spec's), and with one.
const LIMIT: i64 = 100;
const MAX_CURSOR_LIMIT: i64 = 1000;
/// Events read from the log per catch-up query.
const CATCH_UP_PAGE: i64 = 500;

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
            .map(|a| {
                a.parse::<i64>().ok().filter(|a| *a >= 0).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid cursor",
                        "invalid_cursor",
                        Some("after"),
                        "after must be a non-negative integer (an event's seq)",
                    )
                })
            })
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

/// The cursor to resume after: `Last-Event-ID` (what `EventSource` sends on reconnect),
/// else `?after=`.
fn resume_cursor(headers: &HeaderMap, query: &ListQuery) -> Result<Option<i64>, ApiError> {
    match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(id) => id.trim().parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid cursor",
                "invalid_cursor",
                Some("Last-Event-ID"),
                "Last-Event-ID must be an event's seq",
            )
        }),
        None => query.after(),
    }
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
    let after = resume_cursor(&headers, &query)?;
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
    let after = resume_cursor(&headers, &query)?;
    sse(&state, Some(id), after).await
}

/// A `text/event-stream` of the events after `after`, or, without it, of those from now
/// on. Each chunk carries every event ready at that moment, so a busy stream costs one
/// write per batch, not one per event.
async fn sse(
    state: &AppState,
    filter: Option<String>,
    after: Option<i64>,
) -> Result<Response, ApiError> {
    // Subscribe first, then fix the starting point: whatever the channel delivers after
    // it, and whatever the log holds between it and the channel, both arrive (once).
    let receiver = state.app.hub.subscribe();
    let last_seq = match after {
        Some(after) => after,
        None => state
            .app
            .store
            .event_last_seq()
            .await
            .map_err(store_error("failed to open the event stream"))?,
    };
    let subscription = Subscription {
        receiver,
        store: state.app.store.clone(),
        filter,
        last_seq,
        catching_up: true,
        greeted: false,
    };
    let chunks = futures_util::stream::unfold(subscription, |mut s| async move {
        s.next_chunk()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), s))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// One subscriber's position: the last cursor it was sent, and whether it must read the
/// log before the channel.
struct Subscription {
    receiver: broadcast::Receiver<Arc<Batch>>,
    store: Store,
    filter: Option<String>,
    last_seq: i64,
    catching_up: bool,
    greeted: bool,
}

/// The most batches put in one chunk.
const BATCH: usize = 64;
/// A comment line this often keeps idle connections (and proxies) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

impl Subscription {
    /// Append the events of `batch` this subscriber wants and has not had: the whole
    /// batch's bytes at once when that is all of them.
    fn take_batch(&mut self, batch: &Batch, chunk: &mut Vec<u8>) {
        let all_new = batch
            .events
            .iter()
            .all(|e| e.seq.is_none_or(|seq| seq > self.last_seq));
        if self.filter.is_none() && all_new {
            chunk.extend_from_slice(&batch.sse);
            if let Some(seq) = batch.events.iter().filter_map(|e| e.seq).max() {
                self.last_seq = seq;
            }
        } else {
            for event in &batch.events {
                self.take(event, chunk);
            }
        }
    }

    /// Append `event` to `chunk` if this subscriber wants it and has not had it.
    fn take(&mut self, event: &StreamEvent, chunk: &mut Vec<u8>) {
        if event.seq.is_some_and(|seq| seq <= self.last_seq) {
            return;
        }
        let wanted = self
            .filter
            .as_deref()
            .is_none_or(|id| event.workspace_id.as_deref() == Some(id));
        if wanted {
            chunk.extend_from_slice(&event.sse_frame);
        }
        if let Some(seq) = event.seq {
            self.last_seq = seq;
        }
    }

    /// The next chunk of the stream; `None` ends it.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.greeted {
            self.greeted = true;
            return Some(Bytes::from_static(b": ping\n\n"));
        }
        let mut chunk = Vec::new();
        loop {
            if self.catching_up {
                let rows = match self
                    .store
                    .event_list_after(self.last_seq, self.filter.as_deref(), CATCH_UP_PAGE)
                    .await
                {
                    Ok(rows) => rows,
                    Err(error) => {
                        tracing::warn!(%error, "event stream: cannot read the log; closing so the client resumes");
                        return None;
                    }
                };
                if rows.is_empty() {
                    self.catching_up = false;
                } else {
                    for row in &rows {
                        self.take(&StreamEvent::from_row(row), &mut chunk);
                    }
                }
                if !chunk.is_empty() {
                    return Some(Bytes::from(chunk));
                }
                continue;
            }
            // Wait for one event (or a keep-alive), then take whatever else is ready.
            let Ok(first) = tokio::time::timeout(KEEP_ALIVE, self.receiver.recv()).await else {
                return Some(Bytes::from_static(b": keep-alive\n\n"));
            };
            let mut received = Some(first);
            let mut taken = 0;
            while let Some(result) = received.take() {
                match result {
                    Ok(batch) => {
                        self.take_batch(&batch, &mut chunk);
                        taken += 1;
                    }
                    Err(RecvError::Lagged(missed)) => {
                        // Too slow for the channel: say so, then catch up from the log,
                        // which loses nothing logged (broadcast-only events cannot be
                        // replayed).
                        self.catching_up = true;
                        let notice = json!({"missed": missed, "resume_after": self.last_seq});
                        chunk.extend_from_slice(
                            format!("event: lagged\ndata: {notice}\n\n").as_bytes(),
                        );
                        break;
                    }
                    Err(RecvError::Closed) => {
                        return (!chunk.is_empty()).then(|| Bytes::from(chunk));
                    }
                }
                if taken < BATCH {
                    received = match self.receiver.try_recv() {
                        Ok(batch) => Some(Ok(batch)),
                        Err(TryRecvError::Lagged(missed)) => Some(Err(RecvError::Lagged(missed))),
                        Err(TryRecvError::Empty | TryRecvError::Closed) => None,
                    };
                }
            }
            if !chunk.is_empty() {
                return Some(Bytes::from(chunk));
            }
        }
    }
}
