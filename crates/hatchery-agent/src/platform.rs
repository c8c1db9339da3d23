//! A small HTTP client for the control plane, over TCP (`http://host:port`) or over a Unix
//! socket (`unix:/path/to/hatchery.sock`): sandboxed agents have no network, only the socket
//! bound into their sandbox. One connection per call: an agent calls a few times a minute,
//! so nothing stays open to the control plane between calls.
//!
//! Besides its own calls (register, heartbeat), the agent reaches its peers here: a
//! message to another workspace goes through the control plane's A2A proxy, with the
//! agent's own token, and the proxy decides whether it may.

use std::path::PathBuf;
use std::time::Duration;

use hatchery_api::a2a::{
    JSONRPC_VERSION, METHOD_SEND, Message, MessageParams, Part, Reply, Request, RpcError,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The longest a call may take, from connecting to the answer's last byte.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a message to a peer may take: the peer thinks before it answers.
const PEER_CALL_TIMEOUT: Duration = Duration::from_mins(5);
/// The header a calling workspace names itself in (the proxy checks it against the token).
const WORKSPACE_ID_HEADER: &str = "X-Workspace-ID";
/// The most characters of a refusal's body an error quotes.
const QUOTED_ANSWER_CHARS: usize = 512;

/// What the agent reads of a JSON-RPC response to a message.
#[derive(Debug, Deserialize)]
struct Answer {
    result: Option<Reply>,
    error: Option<RpcError>,
}

/// The `Host` of calls over the Unix socket, which has no host name of its own.
const UNIX_SOCKET_HOST: &str = "hatchery";

/// Where the control plane is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    /// `http://host:port`.
    Tcp {
        /// `host:port`.
        authority: String,
    },
    /// `unix:/path`.
    Unix { path: PathBuf },
}

/// The control plane: where it is, and the client that calls it.
#[derive(Debug, Clone)]
pub struct Platform {
    address: Address,
    /// What each call's path is appended to: `http://host:port`, or `http://hatchery` over
    /// the socket.
    base_url: String,
    client: reqwest::Client,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The address is neither `http://…` nor `unix:…`.
    #[error("HATCHERY_URL must be http://HOST:PORT or unix:/PATH, not {0:?}")]
    BadUrl(String),
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {}", innermost(.0))]
    Client(#[source] reqwest::Error),
    /// No connection.
    #[error("cannot reach the control plane at {at}: {}", innermost(.source))]
    #[allow(missing_docs)]
    Connect {
        /// `host:port`, or the socket's path.
        at: String,
        source: reqwest::Error,
    },
    /// The HTTP exchange failed.
    #[error("control plane call failed: {}", innermost(.0))]
    Http(#[source] reqwest::Error),
    /// No answer in time.
    #[error("the control plane did not answer within {0:?}")]
    Timeout(Duration),
    /// A request could not be built.
    #[error("cannot build the request: {}", innermost(.0))]
    Request(#[source] reqwest::Error),
    /// The control plane did not deliver a message to a peer (not allowed, peer offline,
    /// …): its HTTP status and what it said.
    #[error(
        "the control plane did not deliver the message to workspace {target} ({status}): {answer}"
    )]
    NotDelivered {
        /// The peer's workspace id.
        target: String,
        /// The HTTP status.
        status: u16,
        /// The answer's body (its beginning).
        answer: String,
    },
    /// The peer answered with a JSON-RPC error.
    #[error("workspace {target} answered with JSON-RPC error {code}: {message}")]
    PeerError {
        /// The peer's workspace id.
        target: String,
        /// The JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The peer's answer is not a JSON-RPC response carrying a message.
    #[error("workspace {target} answered with something other than a message: {detail}")]
    PeerAnswer {
        /// The peer's workspace id.
        target: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// The deepest cause of `error`: reqwest's own message names the URL, while the reason
/// (`Connection refused`, `connection closed before message completed`) is its last source.
fn innermost(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

impl Address {
    /// Parse `HATCHERY_URL`.
    fn parse(url: &str) -> Result<Self, CallError> {
        if let Some(path) = url.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(CallError::BadUrl(url.to_owned()));
            }
            return Ok(Self::Unix { path: path.into() });
        }
        let authority = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| CallError::BadUrl(url.to_owned()))?;
        Ok(Self::Tcp {
            authority: authority.to_owned(),
        })
    }
}

impl Platform {
    /// Parse `HATCHERY_URL` and set up the client for it.
    pub fn parse(url: &str) -> Result<Self, CallError> {
        let address = Address::parse(url)?;
        let builder = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            // No idle connections kept: each call connects afresh (see the module comment).
            .pool_max_idle_per_host(0)
            // The agent talks only to its control plane; proxy variables in its environment
            // are not meant for that.
            .no_proxy();
        let (builder, base_url) = match &address {
            Address::Tcp { authority } => (builder, format!("http://{authority}")),
            Address::Unix { path } => (
                builder.unix_socket(path.as_path()),
                format!("http://{UNIX_SOCKET_HOST}"),
            ),
        };
        let client = builder.build().map_err(CallError::Client)?;
        Ok(Self {
            address,
            base_url,
            client,
        })
    }

    /// POST `body` to `path` with `token`; the status and the JSON answer (`Null` if the
    /// answer is not JSON).
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Result<(u16, Value), CallError> {
        let response = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|error| self.call_error(error, CALL_TIMEOUT))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.call_error(error, CALL_TIMEOUT))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Send `text` to workspace `target_id` through the control plane's A2A proxy, as
    /// workspace `own_id` with its `token` (`message/send`), in conversation `context_id`
    /// (a new one, named in the answer, when `None`); the peer's answer.
    pub async fn send_message(
        &self,
        token: &str,
        own_id: &str,
        target_id: &str,
        text: &str,
        context_id: Option<&str>,
    ) -> Result<Message, CallError> {
        let request = Request {
            jsonrpc: JSONRPC_VERSION.to_owned(),
            id: Value::String(uuid::Uuid::new_v4().to_string()),
            method: METHOD_SEND.to_owned(),
            params: serde_json::to_value(MessageParams {
                message: Message {
                    role: "user".to_owned(),
                    message_id: Some(uuid::Uuid::new_v4().to_string()),
                    context_id: context_id.map(str::to_owned),
                    parts: vec![Part::text_part(text)],
                    extra: Map::new(),
                },
                extra: Map::new(),
            })
            // Wire types of strings and maps always serialize.
            .unwrap_or_default(),
        };
        let response = self
            .client
            .post(format!("{}/workspaces/{target_id}/a2a", self.base_url))
            .timeout(PEER_CALL_TIMEOUT)
            .bearer_auth(token)
            .header(WORKSPACE_ID_HEADER, own_id)
            .json(&request)
            .send()
            .await
            .map_err(|error| self.call_error(error, PEER_CALL_TIMEOUT))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.call_error(error, PEER_CALL_TIMEOUT))?;
        if status != 200 {
            return Err(CallError::NotDelivered {
                target: target_id.to_owned(),
                status,
                answer: String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(QUOTED_ANSWER_CHARS)
                    .collect(),
            });
        }
        let not_a_message = |detail: String| CallError::PeerAnswer {
            target: target_id.to_owned(),
            detail,
        };
        let answer: Answer =
            serde_json::from_slice(&bytes).map_err(|e| not_a_message(e.to_string()))?;
        match (answer.result, answer.error) {
            (_, Some(error)) => Err(CallError::PeerError {
                target: target_id.to_owned(),
                code: error.code,
                message: error.message,
            }),
            (Some(Reply::Message(message)), None) => Ok(message),
            (Some(_), None) => Err(not_a_message(
                "a step of a stream, not the answer".to_owned(),
            )),
            (None, None) => Err(not_a_message("neither a result nor an error".to_owned())),
        }
    }

    /// What went wrong, by the kind of failure reqwest reports; `timeout`, the call's.
    fn call_error(&self, error: reqwest::Error, timeout: Duration) -> CallError {
        // A timeout first: one while connecting is a timeout, not an unreachable peer.
        if error.is_timeout() {
            CallError::Timeout(timeout)
        } else if error.is_connect() {
            let at = match &self.address {
                Address::Tcp { authority } => authority.clone(),
                Address::Unix { path } => path.display().to_string(),
            };
            CallError::Connect { at, source: error }
        } else if error.is_builder() {
            CallError::Request(error)
        } else {
            CallError::Http(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_tcp_address_or_a_socket() {
        assert_eq!(
            Address::parse("http://127.0.0.1:8080/").unwrap(),
            Address::Tcp {
                authority: "127.0.0.1:8080".into()
            }
        );
        assert_eq!(
            Address::parse("unix:/run/hatchery/hatchery.sock").unwrap(),
            Address::Unix {
                path: "/run/hatchery/hatchery.sock".into()
            }
        );
        for bad in [
            "https://x",
            "unix:",
            "http://",
            "http://host/path",
            "ftp://x",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    /// What the fake control plane saw of a message to a peer.
    #[derive(Debug, Clone)]
    struct Seen {
        path: String,
        workspace_id: Option<String>,
        authorization: Option<String>,
        request: Request,
    }

    /// A control plane on a Unix socket in `dir` whose A2A proxy records what it is sent
    /// and answers with `status` and `answer` (`None`: a message echoing the text, in the
    /// request's context).
    fn proxy(
        dir: &std::path::Path,
        status: u16,
        answer: Option<Value>,
    ) -> (Platform, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
        use axum::extract::{Path, State};
        use axum::http::{HeaderMap, StatusCode};
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let socket = dir.join("hatchery.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let handler = move |State(seen): State<std::sync::Arc<std::sync::Mutex<Vec<Seen>>>>,
                            Path(target): Path<String>,
                            headers: HeaderMap,
                            axum::Json(request): axum::Json<Request>| {
            let answer = answer.clone();
            async move {
                let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
                let params: MessageParams = serde_json::from_value(request.params.clone()).unwrap();
                seen.lock().unwrap().push(Seen {
                    path: format!("/workspaces/{target}/a2a"),
                    workspace_id: header("x-workspace-id"),
                    authorization: header("authorization"),
                    request: request.clone(),
                });
                let answer = answer.unwrap_or_else(|| {
                    serde_json::to_value(hatchery_api::a2a::Response::success(
                        request.id,
                        Reply::Message(Message {
                            role: "agent".into(),
                            message_id: Some("a-1".into()),
                            parts: vec![Part::text_part(format!(
                                "echo: {}",
                                params.message.text()
                            ))],
                            context_id: params.message.context_id.or(Some("new".into())),
                            extra: Map::new(),
                        }),
                    ))
                    .unwrap()
                });
                (StatusCode::from_u16(status).unwrap(), axum::Json(answer))
            }
        };
        let router = axum::Router::new()
            .route("/workspaces/{target}/a2a", axum::routing::post(handler))
            .with_state(std::sync::Arc::clone(&seen));
        tokio::spawn(async move { axum::serve(listener, router).await });
        let platform = Platform::parse(&format!("unix:{}", socket.display())).unwrap();
        (platform, seen)
    }

    #[tokio::test]
    async fn a_message_to_a_peer_goes_through_the_proxy_as_this_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let (platform, seen) = proxy(dir.path(), 200, None);
        let answer = platform
            .send_message("tok-en", "ws-me", "ws-peer", "hello peer", Some("ctx-7"))
            .await
            .unwrap();
        assert_eq!(answer.text(), "echo: hello peer");
        assert_eq!(answer.context_id.as_deref(), Some("ctx-7"));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        let seen = &seen[0];
        assert_eq!(seen.path, "/workspaces/ws-peer/a2a");
        assert_eq!(seen.workspace_id.as_deref(), Some("ws-me"));
        assert_eq!(seen.authorization.as_deref(), Some("Bearer tok-en"));
        assert_eq!(seen.request.jsonrpc, "2.0");
        assert_eq!(seen.request.method, "message/send");
        assert!(seen.request.id.is_string(), "{:?}", seen.request.id);
        let params: MessageParams = serde_json::from_value(seen.request.params.clone()).unwrap();
        assert_eq!(params.message.role, "user");
        assert!(params.message.message_id.is_some());

        // No context: the peer starts one, and the answer names it.
        let answer = platform
            .send_message("tok-en", "ws-me", "ws-peer", "again", None)
            .await
            .unwrap();
        assert_eq!(answer.context_id.as_deref(), Some("new"));
    }

    #[tokio::test]
    async fn a_json_rpc_error_of_the_peer_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let refusal = serde_json::json!({"jsonrpc": "2.0", "id": "x",
            "error": {"code": -32601, "message": "method not found"}});
        let (platform, _) = proxy(dir.path(), 200, Some(refusal));
        let error = platform
            .send_message("t", "ws-me", "ws-peer", "hi", None)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, CallError::PeerError { code: -32601, target, .. } if target == "ws-peer"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "workspace ws-peer answered with JSON-RPC error -32601: method not found"
        );
    }

    #[tokio::test]
    async fn a_refused_delivery_says_the_status_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let refusal = serde_json::json!({"error": "Researcher A may not talk to Writer", "code": "forbidden"});
        let (platform, _) = proxy(dir.path(), 403, Some(refusal));
        let error = platform
            .send_message("t", "ws-me", "ws-peer", "hi", None)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, CallError::NotDelivered { status: 403, .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("may not talk to Writer"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_answer_that_is_no_message_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (platform, _) = proxy(dir.path(), 200, Some(serde_json::json!({"hello": "world"})));
        let error = platform
            .send_message("t", "ws-me", "ws-peer", "hi", None)
            .await
            .unwrap_err();
        assert!(matches!(&error, CallError::PeerAnswer { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn an_absent_control_plane_is_unreachable_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("absent.sock");
        let platform = Platform::parse(&format!("unix:{}", socket.display())).unwrap();
        let error = platform.post("/x", "t", &Value::Null).await.unwrap_err();
        assert!(matches!(error, CallError::Connect { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "cannot reach the control plane at {}: No such file or directory (os error 2)",
                socket.display()
            )
        );
    }
}
