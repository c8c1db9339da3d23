//! `GET /ws`: the live event stream over a WebSocket, as Molecule's canvas and agents use
//! it. Without `X-Workspace-ID` it is the admin's view of everything; with it (and that
//! workspace's own bearer) only events about workspaces the caller can reach. A browser's
//! `Origin` must be an allowed one.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gate::{Admin, AgentCaller};
use super::{AppState, Query};
use crate::app::App;
use crate::app::workspaces::parse_workspace_id;
use crate::error::{ApiError, ErrorBody};
use crate::event_hub::{Cursor, Delivery, StreamEvent};
use hatchery_core::EventKind;

/// A ping this often keeps idle connections open.
const PING_EVERY: Duration = Duration::from_secs(30);
/// Events that can change who reaches whom.
const TREE_EVENTS: [EventKind; 3] = [
    EventKind::WorkspaceProvisioning,
    EventKind::WorkspaceMoved,
    EventKind::WorkspaceRemoved,
];

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upgrade))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct WsQuery {
    /// Resume after this event's `seq`.
    #[param(pattern = "^\\s*[0-9]+\\s*$")]
    after: Option<String>,
}

/// A browser (it sends `Origin`) must come from the server's own origin, one the operator
/// named (`HATCHERY_CORS_ORIGINS`), or in dev mode a loopback one; a client that sends
/// none is not a browser, and its credential is what counts.
fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let own = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|host| {
            origin == format!("http://{host}") || origin == format!("https://{host}")
        });
    let named = state.http.cors_origins.iter().any(|o| o == origin);
    let dev_loopback =
        state.app.dev && super::guard::origin_allowed_in_dev(origin, &state.http.cors_origins);
    if own || named || dev_loopback {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            message: format!("origin {origin} is not allowed"),
            code: "origin_not_allowed",
        })
    }
}

/// The live event stream over a WebSocket: each message is
/// `{"event","workspace_id","timestamp","payload"}`. Without `X-Workspace-ID` it is the
/// admin's view of everything; with it (and that workspace's own token) only events about
/// workspaces the caller can reach. A browser's `Origin` must be the server's own.
#[utoipa::path(get, operation_id = "event_websocket", path = "/ws", tag = "events", security(("admin" = []), ("workspace" = [])),
    params(WsQuery, ("X-Workspace-ID" = Option<String>, Header, description = "The listening workspace, if an agent listens.")),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol."),
        (status = 400, description = "Not a WebSocket upgrade, a bad cursor (`invalid_cursor`), or `X-Workspace-ID` is not a UUID.", body = ErrorBody),
        (status = 403, description = "The browser's origin is not allowed (`origin_not_allowed`).", body = ErrorBody),
        (status = 410, description = "Retention deleted events after `after` (`cursor_expired`, with `pruned_through`): re-read the current state and reconnect without a cursor. Once open, the same is said as a `CURSOR_EXPIRED` message and the socket closes (4410).", body = ErrorBody),
    ))]
async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    check_origin(&state, &headers)?;
    let (caller, revoked) =
        if let Some(caller) = headers.get("x-workspace-id").and_then(|v| v.to_str().ok()) {
            let caller = parse_workspace_id(caller.trim())?;
            let credential = AgentCaller::check(&state, &headers, caller.clone())
                .await?
                .credential;
            (
                Some(caller),
                super::revocation(&state, &headers, &credential),
            )
        } else {
            Admin::check(&state, &headers)?;
            (None, Box::pin(std::future::pending()) as _)
        };
    // A request that cannot become a WebSocket subscribes to nothing.
    let upgrade = upgrade.map_err(|e| {
        ApiError::bad_request(
            "a WebSocket upgrade is required",
            "websocket_upgrade_required",
            None,
            e.body_text(),
        )
    })?;
    let after = super::resume_cursor(&headers, query.after.as_deref())?;
    let cursor = Cursor::open(&state.app.hub, state.app.store.clone(), None, after).await?;
    let app = state.app.clone();
    Ok(upgrade.on_upgrade(move |socket| serve(socket, cursor, caller, app, revoked)))
}

/// How long one message may take to reach a client that has stopped reading before the
/// socket is given up: a stalled client neither holds the stream open past its
/// credential's revocation nor pins the events it has not taken.
const SEND_PATIENCE: Duration = Duration::from_secs(10);

/// Send one message within [`SEND_PATIENCE`]; an error when it could not be.
async fn send(
    sender: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    message: Message,
) -> Result<(), ()> {
    match tokio::time::timeout(SEND_PATIENCE, sender.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Who a caller may hear about, remembered until the tree changes.
struct Reach {
    caller: Option<String>,
    known: HashMap<String, bool>,
}

impl Reach {
    async fn allows(&mut self, app: &App, event: &StreamEvent) -> bool {
        let Some(caller) = &self.caller else {
            return true;
        };
        if TREE_EVENTS
            .iter()
            .any(|kind| kind.as_str() == event.event_type)
        {
            self.known.clear();
        }
        let Some(target) = &event.workspace_id else {
            return false;
        };
        if let Some(allowed) = self.known.get(target) {
            return *allowed;
        }
        // A failed check denies: the default.
        let allowed = app.reachable(caller, target).await.unwrap_or(false);
        self.known.insert(target.clone(), allowed);
        allowed
    }
}

async fn serve(
    socket: WebSocket,
    mut cursor: Cursor,
    caller: Option<String>,
    app: App,
    mut revoked: futures_util::future::BoxFuture<'static, ()>,
) {
    let (mut sender, mut receiver) = socket.split();
    let mut reach = Reach {
        caller,
        known: HashMap::new(),
    };
    loop {
        tokio::select! {
            () = &mut revoked => {
                // 1008: policy violation — the credential it was opened with is gone.
                let close = axum::extract::ws::CloseFrame {
                    code: 1008,
                    reason: "credential revoked".into(),
                };
                let _ = send(&mut sender, Message::Close(Some(close))).await;
                return;
            }
            incoming = receiver.next() => match incoming {
                // Clients may send pings or text; only a close (or an error) ends it.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            delivery = cursor.next(PING_EVERY) => {
                let Some(delivery) = delivery else { return };
                let messages = match delivery {
                    Delivery::Whole(batch) => batch.events.clone(),
                    Delivery::Events(events) => events,
                    Delivery::Lagged { missed, resume_after } => {
                        let notice = json!({
                            "event": "LAGGED",
                            "workspace_id": null,
                            "timestamp": crate::http::views::timestamp(app.store.now()),
                            "payload": {"missed": missed, "resume_after": resume_after},
                        });
                        if send(&mut sender, Message::Text(notice.to_string().into())).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Delivery::Idle => {
                        if send(&mut sender, Message::Ping(Vec::new().into())).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Delivery::Expired { pruned_through } => {
                        // Retention overtook the cursor: say so, and close (4410, like
                        // the 410 a reconnect with that cursor would get).
                        let error = crate::app::events::cursor_expired(pruned_through);
                        let notice = json!({
                            "event": "CURSOR_EXPIRED",
                            "workspace_id": null,
                            "timestamp": crate::http::views::timestamp(app.store.now()),
                            "payload": {"error": error.to_string(), "code": "cursor_expired", "pruned_through": pruned_through},
                        });
                        let _ = send(&mut sender, Message::Text(notice.to_string().into())).await;
                        let close = axum::extract::ws::CloseFrame {
                            code: 4410,
                            reason: "cursor expired".into(),
                        };
                        let _ = send(&mut sender, Message::Close(Some(close))).await;
                        return;
                    }
                };
                for event in messages {
                    if reach.allows(&app, &event).await
                        && send(&mut sender, Message::Text(event.ws_json().to_owned().into())).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
    }
}
