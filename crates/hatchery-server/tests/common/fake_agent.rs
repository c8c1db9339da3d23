//! A test agent: a small HTTP server of the test's own that answers A2A as the test
//! tells it (at once, with a JSON-RPC error, with garbage, slowly, as a stream), and keeps
//! every message it got. Registered by URL, it stands for an external agent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::Running;

/// Register `id`'s agent at `agent`'s URL with a fresh bootstrap token; its workspace
/// token.
pub async fn register(server: &Running, id: &str, name: &str, agent: &Agent) -> String {
    let (status, bootstrap) = server
        .post(
            &format!("/admin/workspaces/{id}/bootstrap-token"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 201, "{bootstrap}");
    let (status, registered) = server
        .post_as(
            "/registry/register",
            &json!({"id": id, "url": agent.url, "agent_card": {"name": name}}),
            bootstrap["bootstrap_token"].as_str(),
        )
        .await;
    assert_eq!(status, 200, "{registered}");
    registered["auth_token"].as_str().unwrap().to_owned()
}

/// A workspace named `name` (under `parent`) whose agent registered at `agent`'s URL; its
/// id and its workspace token.
pub async fn online(
    server: &Running,
    name: &str,
    parent: Option<&str>,
    agent: &Agent,
) -> (String, String) {
    let created = server
        .create(&json!({"name": name, "parent_id": parent}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let token = register(server, &id, name, agent).await;
    (id, token)
}

/// What a test agent does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer a JSON-RPC result naming the text it got.
    Answer,
    /// Answer a JSON-RPC error.
    RpcError,
    /// Answer an HTML page.
    Garbage,
    /// Answer after this long.
    Slow(Duration),
    /// Stream three chunks this far apart, then the final message.
    Stream(Duration),
    /// Stream one event, then say nothing more.
    StreamThenSilence,
}

/// A test agent: what it got, and how it answers.
#[derive(Clone)]
pub struct Agent {
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    /// Where it answers: `http://localhost:<port>/`.
    pub url: String,
}

impl Agent {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let agent = Self {
            behaviour: Arc::new(Mutex::new(Behaviour::Answer)),
            received: Arc::default(),
            url: format!("http://localhost:{port}/"),
        };
        let router = axum::Router::new()
            .route("/", axum::routing::post(answer))
            .with_state(agent.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        agent
    }

    /// The same agent, registered at another URL (one it does not answer at).
    pub fn at(&self, url: String) -> Self {
        Self {
            url,
            ..self.clone()
        }
    }

    pub fn behave(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn last(&self) -> (HeaderMap, Value) {
        self.received
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the agent got a message")
    }

    /// Every message so far: who called (`X-Hatchery-Caller`) and the request.
    pub fn messages(&self) -> Vec<(String, Value)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(headers, request)| {
                let caller = headers
                    .get("x-hatchery-caller")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                (caller, request.clone())
            })
            .collect()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

async fn answer(
    State(agent): State<Agent>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    agent
        .received
        .lock()
        .unwrap()
        .push((headers, request.clone()));
    let id = request["id"].clone();
    let text = request["params"]["message"]["parts"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let result = json!({"jsonrpc": "2.0", "id": id, "result": {
        "kind": "message", "role": "agent", "messageId": "answer",
        "parts": [{"kind": "text", "text": format!("you said: {text}")}]}});
    let behaviour = *agent.behaviour.lock().unwrap();
    match behaviour {
        Behaviour::Answer => axum::Json(result).into_response(),
        Behaviour::RpcError => axum::Json(json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -32601, "message": "method not found"}}))
        .into_response(),
        Behaviour::Garbage => (
            [("content-type", "text/html")],
            "<html>secret internal page</html>",
        )
            .into_response(),
        Behaviour::Slow(delay) => {
            tokio::time::sleep(delay).await;
            axum::Json(result).into_response()
        }
        Behaviour::Stream(gap) => {
            let events = futures_util::stream::unfold(0, move |i| {
                let id = id.clone();
                async move {
                    if i > 3 {
                        return None;
                    }
                    if i > 0 {
                        tokio::time::sleep(gap).await;
                    }
                    let result = if i < 3 {
                        json!({"kind": "artifact-update", "taskId": "t", "contextId": "c",
                            "artifact": {"artifactId": "a", "parts": [{"kind": "text", "text": format!("chunk{i} ")}]},
                            "append": i > 0, "lastChunk": i == 2})
                    } else {
                        json!({"kind": "message", "role": "agent", "parts": [{"kind": "text", "text": "done"}]})
                    };
                    let frame = format!(
                        "data: {}\n\n",
                        json!({"jsonrpc": "2.0", "id": id, "result": result})
                    );
                    Some((Ok::<_, std::io::Error>(frame), i + 1))
                }
            });
            (
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(events),
            )
                .into_response()
        }
        Behaviour::StreamThenSilence => {
            let first = futures_util::stream::once(async move {
                Ok::<_, std::io::Error>(format!(
                    "data: {}\n\n",
                    json!({"jsonrpc": "2.0", "id": id, "result": {"kind": "status-update"}})
                ))
            });
            let events = first.chain(futures_util::stream::pending());
            (
                [("content-type", "text/event-stream")],
                axum::body::Body::from_stream(events),
            )
                .into_response()
        }
    }
}
