//! Streams do not outlive their credential, on the real server on SQLite and Postgres: an
//! event stream (SSE or WebSocket) or a followed log opened with a workspace token ends
//! once that token is revoked; the admin's streams stay open.

mod common;

use std::time::Duration;

use common::{Db, Env, Running, TOKEN, spawn};
use futures_util::StreamExt as _;
use serde_json::json;

hatchery_testkit::both_databases!(streams_end_when_their_token_is_revoked);

/// How long a revoked stream may stay open: the recheck's second, with room for a busy CI.
const PATIENCE: Duration = Duration::from_secs(10);

/// A new workspace token of `id`, and its token id.
async fn token_of(server: &Running, id: &str) -> (String, String) {
    let (status, issued) = server
        .post(&format!("/workspaces/{id}/tokens"), &json!({}))
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["auth_token"].as_str().unwrap().to_owned();
    let (_, listed) = server.get(&format!("/workspaces/{id}/tokens")).await;
    let prefix: String = token.chars().take(8).collect();
    let token_id = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["prefix"] == prefix.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (token, token_id)
}

/// A streaming GET with `token`; asserts 200.
async fn open(server: &Running, path: &str, token: &str) -> reqwest::Response {
    let response = server.get_response(path, token).await;
    assert_eq!(response.status(), 200, "{path}");
    response
}

/// Whether the body ends within [`PATIENCE`] (chunks before the end are skipped).
async fn ends(response: &mut reqwest::Response) -> bool {
    tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(_)) = response.chunk().await {}
    })
    .await
    .is_ok()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `/ws` as workspace `id` with `token`.
async fn websocket(server: &Running, id: &str, token: &str) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let url = format!("{}/ws", server.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
        .headers_mut()
        .insert("x-workspace-id", id.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The close frame's code, if the server closes the socket within [`PATIENCE`].
async fn closed_with(socket: &mut Socket) -> Option<u16> {
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(PATIENCE, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

async fn streams_end_when_their_token_is_revoked(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let id = server.create_named("agent").await;
    let (token, token_id) = token_of(&server, &id).await;
    let mut events = open(&server, &format!("/workspaces/{id}/events/stream"), &token).await;
    let mut admin_events = open(&server, "/events/stream", TOKEN).await;
    let mut socket = websocket(&server, &id, &token).await;
    // Still open after a few rechecks: a live token's stream is kept.
    assert!(
        tokio::time::timeout(Duration::from_millis(2500), async {
            while let Ok(Some(_)) = events.chunk().await {}
        })
        .await
        .is_err(),
        "a live token's stream stays open"
    );

    let (status, body) = server
        .delete(&format!("/workspaces/{id}/tokens/{token_id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(ends(&mut events).await, "the SSE stream ends");
    assert_eq!(
        closed_with(&mut socket).await,
        Some(1008),
        "the WebSocket closes"
    );
    // The admin's stream is not the revoked token's: it stays open.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(Some(_)) = admin_events.chunk().await {}
        })
        .await
        .is_err(),
        "the admin's stream stays open"
    );
    // A revoked token opens nothing new.
    let (status, _) = server
        .get_as(&format!("/workspaces/{id}/events/stream"), Some(&token))
        .await;
    assert_eq!(status, 401);
}
