//! `/events`: the persisted event log (newest first, or after a cursor) and live streams:
//! SSE for everyone (`/events/stream`) and for one workspace
//! (`/workspaces/:id/events/stream`), resumable with `Last-Event-ID`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use hatchery_store::{EventRow, Store};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};

use super::views::timestamp;
use super::{AppState, require_admin, require_workspace};
use crate::app::store_error;
use crate::app::workspaces::parse_workspace_id;
use crate::error::ApiError;
use crate::event_hub::StreamEvent;

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
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
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
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = parse_workspace_id(&id)?;
    require_workspace(&state, &headers, &id).await?;
    state.app.workspace_exists(&id).await?;
    let after = resume_cursor(&headers, &query)?;
    sse(&state, Some(id), after).await
}

/// A stream of the events after `after`, or, without it, of those from now on.
async fn sse(
    state: &AppState,
    filter: Option<String>,
    after: Option<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
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
        backlog: VecDeque::new(),
        catching_up: true,
        greeted: false,
    };
    Ok(Sse::new(futures_util::stream::unfold(
        subscription,
        |mut s| async move { s.next().await.map(|event| (Ok(event), s)) },
    ))
    .keep_alive(KeepAlive::default()))
}

/// One subscriber's position: what it has been sent, and what is queued for it.
struct Subscription {
    receiver: broadcast::Receiver<Arc<StreamEvent>>,
    store: Store,
    filter: Option<String>,
    last_seq: i64,
    backlog: VecDeque<Arc<StreamEvent>>,
    catching_up: bool,
    greeted: bool,
}

impl Subscription {
    fn wants(&self, event: &StreamEvent) -> bool {
        self.filter
            .as_deref()
            .is_none_or(|id| event.workspace_id.as_deref() == Some(id))
    }

    fn sse_event(&mut self, event: &StreamEvent) -> Event {
        let sse = Event::default().data(&event.sse_json);
        match event.seq {
            Some(seq) => {
                self.last_seq = seq;
                sse.id(seq.to_string())
            }
            None => sse,
        }
    }

    async fn next(&mut self) -> Option<Event> {
        if !self.greeted {
            self.greeted = true;
            return Some(Event::default().comment("ping"));
        }
        loop {
            if let Some(event) = self.backlog.pop_front() {
                return Some(self.sse_event(&event));
            }
            if self.catching_up {
                match self
                    .store
                    .event_list_after(self.last_seq, self.filter.as_deref(), CATCH_UP_PAGE)
                    .await
                {
                    Ok(rows) if rows.is_empty() => self.catching_up = false,
                    Ok(rows) => {
                        self.backlog
                            .extend(rows.iter().map(|r| Arc::new(StreamEvent::from_row(r))));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "event stream: cannot read the log; closing so the client resumes");
                        return None;
                    }
                }
                continue;
            }
            match self.receiver.recv().await {
                Ok(event) => {
                    let already_sent = event.seq.is_some_and(|seq| seq <= self.last_seq);
                    if !already_sent && self.wants(&event) {
                        return Some(self.sse_event(&event));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    // Too slow for the channel: say so, then catch up from the log, which
                    // loses nothing persisted (broadcast-only events cannot be replayed).
                    self.catching_up = true;
                    let notice = json!({"missed": missed, "resume_after": self.last_seq});
                    return Some(Event::default().event("lagged").data(notice.to_string()));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
