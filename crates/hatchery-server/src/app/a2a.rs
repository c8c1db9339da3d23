//! A2A: a message to a workspace's agent, carried by the control plane
//! (`POST /workspaces/:id/a2a`).
//!
//! The caller is the operator or a workspace the org tree lets reach the target (spec §6).
//! The control plane, not the caller, knows where the agent is: the backend's socket for a
//! sandboxed agent (it has no network), the pod's address for one in Kubernetes, the
//! registered URL for an external one (checked by the rules of registration again). The
//! caller's headers never reach the agent: it learns who is calling from
//! `X-Hatchery-Caller`, and nothing of the caller's credential.
//!
//! Bodies that are not JSON-RPC are wrapped as Molecule wraps them; `message/stream`
//! answers are relayed frame by frame, never gathered. Every call is traced as activity on
//! both sides (`a2a_receive` on the target, `a2a_send` on a calling workspace), and an
//! answered call of the operator's is broadcast as `A2A_RESPONSE`, which Molecule's canvas
//! shows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt as _};
use hatchery_api::a2a::{self as wire, JSONRPC_VERSION, METHOD_SEND, METHOD_STREAM};
use hatchery_core::{EventKind, WorkspaceStatus};
use hatchery_provision::AgentEndpoint;
use hatchery_store::{ActivityRow, WorkspaceRow};
use serde_json::{Map, Value, json};

use super::agents::check_agent_url;
use super::limits::MAX_ACTIVITY_BODY_BYTES;
use super::{AgentFault, App, Error, store_error};
use crate::event_hub::StreamEvent;

/// The most bytes of a `message/send` answer read from an agent (Molecule's limit).
pub const MAX_ANSWER_BYTES: usize = 10 * 1024 * 1024;
/// The header that tells the agent who is calling: a workspace id, or `operator`.
pub const CALLER_HEADER: &str = "x-hatchery-caller";
/// Where a sandboxed agent registers (its own address means nothing to its peers): the
/// control plane reaches it through its backend, never at this URL.
pub use hatchery_api::a2a::SANDBOX_URL_PREFIX;
/// The most messages one workspace may have in flight at once, to all its peers together:
/// an agent in a loop cannot take the control plane's connections for itself. (The
/// operator has no such cap: its messages are a person's, or an operator's script's.)
pub const MAX_IN_FLIGHT_PER_CALLER: usize = 32;
/// The most bytes of a stream's last event kept to trace it.
const MAX_TRACED_EVENT_BYTES: usize = MAX_ACTIVITY_BODY_BYTES;

/// Where a caller that reaches the control plane at `base` (`http://host:port`) reaches
/// workspace `id`'s agent, which registered `url`: a sandboxed agent's URL means nothing
/// outside its sandbox, so the proxy's route stands for it; any other URL is the agent's.
#[must_use]
pub fn reachable_url(url: &str, id: &str, base: &str) -> String {
    if url.starts_with(SANDBOX_URL_PREFIX) {
        format!("{}/workspaces/{id}/a2a", base.trim_end_matches('/'))
    } else {
        url.to_owned()
    }
}

/// Who sends a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The operator (the admin token; in dev mode, anyone on loopback).
    Operator,
    /// A workspace, by id, that passed its own gate.
    Workspace(String),
}

impl Caller {
    /// How the agent (`X-Hatchery-Caller`) and the queue name it.
    pub(super) fn header_value(&self) -> &str {
        match self {
            Self::Operator => "operator",
            Self::Workspace(id) => id,
        }
    }

    fn workspace(&self) -> Option<&str> {
        match self {
            Self::Operator => None,
            Self::Workspace(id) => Some(id),
        }
    }
}

/// One message to deliver.
#[derive(Debug, Clone)]
pub struct A2aCall {
    /// The workspace whose agent gets it.
    pub target: String,
    /// Who sends it (already through its gate).
    pub caller: Caller,
    /// The body as the caller sent it.
    pub body: Bytes,
}

/// What the agent answered.
pub enum A2aAnswer {
    /// A JSON-RPC response (result or error), with the agent's HTTP status.
    Json {
        /// The agent's status.
        status: u16,
        /// The agent's bytes, unchanged.
        body: Bytes,
    },
    /// `message/stream`: Server-Sent Events, relayed as they come.
    Stream(BoxStream<'static, Result<Bytes, std::io::Error>>),
}

impl std::fmt::Debug for A2aAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json { status, body } => f
                .debug_struct("Json")
                .field("status", status)
                .field("bytes", &body.len())
                .finish(),
            Self::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// The HTTP clients that reach agents: one pooled client for agents at URLs, one per
/// sandbox socket (a client's Unix socket is fixed when it is built).
#[derive(Debug, Default)]
pub struct AgentClients {
    by_url: OnceLock<reqwest::Client>,
    by_socket: Mutex<HashMap<PathBuf, SocketClient>>,
    in_flight: Arc<Mutex<HashMap<Flight, usize>>>,
}

/// Who a message in flight counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Flight {
    /// The workspace it goes to (at most its `max_concurrent_tasks`).
    To(String),
    /// The workspace that sent it (at most [`MAX_IN_FLIGHT_PER_CALLER`]).
    From(String),
}

/// A message's place among those in flight, given back when it is dropped (the answer
/// was read, or the stream ended or was abandoned).
#[derive(Debug)]
struct Slot {
    in_flight: Arc<Mutex<HashMap<Flight, usize>>>,
    flights: Vec<Flight>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for flight in &self.flights {
            if let Some(count) = counts.get_mut(flight) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(flight);
                }
            }
        }
    }
}

/// A client bound to one agent's socket, and the socket's directory held open when its
/// path is too long to connect to directly.
#[derive(Debug)]
struct SocketClient {
    client: reqwest::Client,
    _directory: Option<std::fs::File>,
}

/// The longest path a Unix socket can be connected at (`sun_path` is 108 bytes, with its
/// terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

impl AgentClients {
    fn builder() -> reqwest::ClientBuilder {
        // No redirects (an agent must not send the proxy elsewhere), no proxy from the
        // environment (an agent's address is not for a corporate proxy to see).
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(90))
    }

    fn for_url(&self) -> Result<reqwest::Client, Error> {
        if let Some(client) = self.by_url.get() {
            return Ok(client.clone());
        }
        let client = Self::builder()
            .build()
            .map_err(|e| Error::internal("failed to reach workspace agent", e))?;
        Ok(self.by_url.get_or_init(|| client).clone())
    }

    fn for_socket(&self, path: &Path) -> Result<reqwest::Client, Error> {
        let mut clients = self
            .by_socket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(socket) = clients.get(path) {
            return Ok(socket.client.clone());
        }
        let (address, directory) = short_socket_path(path)
            .map_err(|e| Error::internal("failed to reach workspace agent", e))?;
        let client = Self::builder()
            .unix_socket(address)
            .build()
            .map_err(|e| Error::internal("failed to reach workspace agent", e))?;
        clients.insert(
            path.to_owned(),
            SocketClient {
                client: client.clone(),
                _directory: directory,
            },
        );
        Ok(client)
    }

    /// A slot for one more message to `target` (at most `target_limit` at once) from
    /// `caller`; the refusal in words when either is at its limit.
    fn take_slot(&self, target: &WorkspaceRow, caller: &Caller) -> Result<Slot, Error> {
        let target_limit = usize::try_from(target.max_concurrent_tasks.max(1)).unwrap_or(1);
        let mut counts = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let to = Flight::To(target.id.clone());
        if counts.get(&to).copied().unwrap_or(0) >= target_limit {
            return Err(Error::Busy {
                message: format!(
                    "workspace {} is busy: it takes {target_limit} message(s) at a time (its max_concurrent_tasks)",
                    target.name
                ),
            });
        }
        let mut flights = vec![to];
        if let Some(from) = caller.workspace() {
            let from = Flight::From(from.to_owned());
            if counts.get(&from).copied().unwrap_or(0) >= MAX_IN_FLIGHT_PER_CALLER {
                return Err(Error::Busy {
                    message: format!(
                        "this workspace has {MAX_IN_FLIGHT_PER_CALLER} messages in flight already: wait for an answer"
                    ),
                });
            }
            flights.push(from);
        }
        for flight in &flights {
            *counts.entry(flight.clone()).or_default() += 1;
        }
        Ok(Slot {
            in_flight: Arc::clone(&self.in_flight),
            flights,
        })
    }

    /// Forget the client of a socket that is gone (its sandbox stopped).
    fn forget(&self, path: &Path) {
        self.by_socket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(path);
    }
}

/// A path to connect to `socket` at: itself when it is short enough, else the same socket
/// through its directory held open (`/proc/self/fd/N/agent.sock`), since a deep data
/// directory makes sandbox socket paths longer than a socket address can be.
fn short_socket_path(socket: &Path) -> std::io::Result<(PathBuf, Option<std::fs::File>)> {
    use std::os::fd::AsRawFd as _;
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        return Ok((socket.to_owned(), None));
    }
    let (Some(parent), Some(name)) = (socket.parent(), socket.file_name()) else {
        return Ok((socket.to_owned(), None));
    };
    let directory = std::fs::File::open(parent)?;
    let through = PathBuf::from(format!("/proc/self/fd/{}", directory.as_raw_fd())).join(name);
    Ok((through, Some(directory)))
}

/// A request as the agent gets it.
#[derive(Debug, Clone)]
pub(super) struct Normalized {
    /// JSON-RPC 2.0, with a `messageId` on its message.
    pub(super) body: Value,
    /// Its method, for the traces.
    pub(super) method: String,
    /// Its id, for an error the proxy itself writes into a stream.
    id: Value,
}

/// Molecule's wrapping: a body without `jsonrpc` becomes a JSON-RPC request of its
/// `method` (`message/send` when it names none) and `params`, with a new id; a message
/// without `messageId` gets one. Anything else passes untouched.
pub(super) fn normalize(body: &[u8]) -> Result<Normalized, Error> {
    let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(body) else {
        return Err(Error::invalid(
            "invalid JSON",
            "invalid_json",
            None,
            "the body must be a JSON object: a JSON-RPC 2.0 request, or {\"method\", \"params\"}",
        ));
    };
    if !request.contains_key("jsonrpc") {
        let method = request
            .remove("method")
            .filter(|m| !m.is_null())
            .unwrap_or_else(|| Value::from(METHOD_SEND));
        let params = request.remove("params").unwrap_or(Value::Null);
        request = Map::from_iter([
            ("jsonrpc".to_owned(), Value::from(JSONRPC_VERSION)),
            ("id".to_owned(), Value::from(new_id())),
            ("method".to_owned(), method),
            ("params".to_owned(), params),
        ]);
    }
    if let Some(Value::Object(message)) = request
        .get_mut("params")
        .and_then(|params| params.get_mut("message"))
        && !message.contains_key("messageId")
    {
        message.insert("messageId".to_owned(), Value::from(new_id()));
    }
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    Ok(Normalized {
        body: Value::Object(request),
        method,
        id,
    })
}

fn new_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// Where an agent is, for this call.
enum Route {
    /// The backend's socket of a sandboxed agent.
    Socket(PathBuf),
    /// An address the backend knows (a pod's): reached as it is, since no agent chose it.
    Backend(String),
    /// The URL an external agent registered.
    Url(String),
}

/// What became of one call, for its traces.
struct Outcome {
    status: &'static str,
    error_detail: Option<String>,
    response: Option<Value>,
}

impl App {
    /// Deliver one message to `call.target`'s agent and return its answer.
    ///
    /// Refused before anything is sent: a body that is not a JSON object (400); an unknown
    /// or removed target (404); a calling workspace the tree does not let reach the target
    /// (403); a target whose agent is not up (503 with its status). Then: nothing answers
    /// (502), silence beyond the idle timeout (504), an answer that is not JSON-RPC (502).
    pub async fn a2a_call(&self, call: A2aCall) -> Result<A2aAnswer, Error> {
        let request = normalize(&call.body)?;
        let target = self.a2a_target(&call).await?;
        if !target.status.is_reachable() {
            return Err(Error::NotServing {
                status: target.status,
            });
        }
        let route = self.route(&target)?;
        let slot = self.agent_clients.take_slot(&target, &call.caller)?;
        let started = Instant::now();
        let idle = self.supervision.a2a_idle_timeout;
        let sent = self.send(&route, &target, &call.caller, &request).await;
        let response = match sent {
            Ok(response) => response,
            Err(fault) => {
                if let (AgentFault::Unreachable(_), Route::Socket(path)) = (&fault, &route) {
                    self.agent_clients.forget(path);
                }
                let outcome = fault_outcome(&fault);
                self.a2a_trace(&call, &target, &request, started, outcome)
                    .await;
                return Err(Error::Agent {
                    name: target.name.clone(),
                    fault,
                });
            }
        };
        if is_event_stream(&response) {
            let trace = StreamTrace {
                app: self.clone(),
                call,
                target,
                request,
                started,
                tail: SseTail::default(),
                done: false,
                slot: Some(slot),
            };
            return Ok(A2aAnswer::Stream(Self::relay(response, trace, idle)));
        }
        let status = response.status().as_u16();
        let answer = match read_answer(response, idle).await {
            Ok(answer) => answer,
            Err(fault) => {
                self.a2a_trace(&call, &target, &request, started, fault_outcome(&fault))
                    .await;
                return Err(Error::Agent {
                    name: target.name.clone(),
                    fault,
                });
            }
        };
        let parsed: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        let outcome = Outcome {
            status: if parsed.get("error").is_some() {
                "error"
            } else {
                "ok"
            },
            error_detail: parsed
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            response: Some(parsed),
        };
        self.a2a_trace(&call, &target, &request, started, outcome)
            .await;
        Ok(A2aAnswer::Json {
            status,
            body: answer,
        })
    }

    /// The call's target: a workspace that exists, is not removed, and that a calling
    /// workspace may reach by the org tree (spec §6).
    pub(super) async fn a2a_target(&self, call: &A2aCall) -> Result<WorkspaceRow, Error> {
        let target = self
            .store
            .workspace_get(&call.target)
            .await
            .map_err(store_error("failed to look up workspace"))?
            .filter(|row| row.status != WorkspaceStatus::Removed)
            .ok_or_else(|| Error::workspace_not_found(&call.target))?;
        if let Caller::Workspace(caller) = &call.caller
            && !self.reachable(caller, &target.id).await?
        {
            return Err(Error::Refused {
                code: "not_reachable",
                message: "access denied: workspaces cannot communicate per hierarchy rules"
                    .to_owned(),
            });
        }
        Ok(target)
    }

    /// Where the target's agent is: the socket or address its backend keeps while it runs
    /// the sandbox or pod, else the URL it registered (external agents).
    fn route(&self, target: &WorkspaceRow) -> Result<Route, Error> {
        let endpoint = self
            .provisioner
            .as_ref()
            .and_then(|provisioner| provisioner.backend.a2a_endpoint(&target.id));
        match endpoint {
            Some(AgentEndpoint::Unix(path)) => Ok(Route::Socket(path)),
            Some(AgentEndpoint::Url(url)) => Ok(Route::Backend(url)),
            None if target.url.starts_with(SANDBOX_URL_PREFIX) => Err(Error::Agent {
                name: target.name.clone(),
                fault: AgentFault::Unreachable(
                    "its sandbox is not run by this control plane".to_owned(),
                ),
            }),
            None if target.url.is_empty() => Err(Error::NotServing {
                status: target.status,
            }),
            None => Ok(Route::Url(target.url.clone())),
        }
    }

    /// Post the request to the agent and wait, at most the idle timeout, for its answer's
    /// head. Only the headers set here reach the agent.
    async fn send(
        &self,
        route: &Route,
        target: &WorkspaceRow,
        caller: &Caller,
        request: &Normalized,
    ) -> Result<reqwest::Response, AgentFault> {
        let idle = self.supervision.a2a_idle_timeout;
        let (client, url) = match route {
            Route::Socket(path) => (
                self.agent_clients.for_socket(path),
                // The host is for HTTP's sake: the socket decides where it goes.
                "http://agent/".to_owned(),
            ),
            Route::Backend(url) => (self.agent_clients.for_url(), url.clone()),
            Route::Url(url) => {
                // The rules of registration, again: a name may resolve elsewhere now.
                check_agent_url(url).await.map_err(|reason| {
                    AgentFault::Unreachable(format!("its URL is refused: {reason}"))
                })?;
                (self.agent_clients.for_url(), url.clone())
            }
        };
        let client = client.map_err(|e| AgentFault::Unreachable(format!("no HTTP client: {e}")))?;
        let accept = if request.method == METHOD_STREAM {
            "text/event-stream"
        } else {
            "application/json"
        };
        let body = serde_json::to_vec(&request.body).unwrap_or_default();
        let sent = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, accept)
            .header(CALLER_HEADER, caller.header_value())
            .body(body)
            .send();
        match tokio::time::timeout(idle, sent).await {
            Err(_) => Err(AgentFault::Silent(idle)),
            // Only a failed connect says the message never reached the agent (and may be
            // queued or sent again); once it was written, the agent may have acted on it.
            Ok(Err(error)) if error.is_connect() => Err(AgentFault::Unreachable(format!(
                "{} ({})",
                where_it_is(route, &target.id),
                error_chain(&error)
            ))),
            Ok(Err(error)) => Err(AgentFault::BadAnswer(format!(
                "no answer from {}: {}",
                where_it_is(route, &target.id),
                error_chain(&error)
            ))),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Relay an agent's event stream frame by frame. Silence beyond `idle` ends it with a
    /// JSON-RPC error event naming the workspace; its end (or the caller leaving) traces
    /// the call with the last event seen.
    fn relay(
        response: reqwest::Response,
        trace: StreamTrace,
        idle: Duration,
    ) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
        let name = trace.target.name.clone();
        let silent_error = trace.request.id.clone();
        let relay = Relay {
            response,
            trace: Some(trace),
        };
        stream::unfold(relay, move |mut relay| {
            let name = name.clone();
            let silent_error = silent_error.clone();
            async move {
                let trace = relay.trace.as_mut()?;
                if trace.done {
                    return None;
                }
                match tokio::time::timeout(idle, relay.response.chunk()).await {
                    Ok(Ok(Some(chunk))) => {
                        trace.tail.feed(&chunk);
                        Some((Ok(chunk), relay))
                    }
                    Ok(Ok(None)) => {
                        relay.finish("ok", None);
                        None
                    }
                    Ok(Err(error)) => {
                        relay.finish("error", Some(error_chain(&error)));
                        Some((Err(std::io::Error::other(error)), relay))
                    }
                    Err(_) => {
                        let fault = AgentFault::Silent(idle);
                        let message = Error::Agent {
                            name,
                            fault: fault.clone(),
                        }
                        .to_string();
                        let event = wire::Response::<Value>::failure(
                            silent_error,
                            wire::codes::INTERNAL_ERROR,
                            message.clone(),
                        );
                        let frame = format!(
                            "data: {}\n\n",
                            serde_json::to_string(&event).unwrap_or_default()
                        );
                        relay.finish("timeout", Some(message));
                        Some((Ok(Bytes::from(frame)), relay))
                    }
                }
            }
        })
        .boxed()
    }

    /// Write the call's activity on both sides and, for the operator's answered call,
    /// broadcast `A2A_RESPONSE`. The answer already exists: a failed write is logged, not
    /// turned into a failed call.
    async fn a2a_trace(
        &self,
        call: &A2aCall,
        target: &WorkspaceRow,
        request: &Normalized,
        started: Instant,
        outcome: Outcome,
    ) {
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let now = self.store.now();
        let summary = match outcome.status {
            "ok" => format!("{} → {}", request.method, target.name),
            _ => format!(
                "A2A request to {} failed: {}",
                target.name,
                outcome.error_detail.as_deref().unwrap_or(outcome.status)
            ),
        };
        let row = |workspace_id: &str, activity_type: &str| ActivityRow {
            id: new_id(),
            workspace_id: workspace_id.to_owned(),
            activity_type: activity_type.to_owned(),
            source_id: call.caller.workspace().map(str::to_owned),
            target_id: Some(target.id.clone()),
            method: Some(request.method.clone()).filter(|m| !m.is_empty()),
            summary: Some(summary.clone()),
            duration_ms: Some(duration_ms),
            status: outcome.status.to_owned(),
            error_detail: outcome.error_detail.clone(),
            request_body: Some(traced_body(&request.body)),
            response_body: outcome.response.as_ref().map(traced_body),
            created_at: now,
        };
        let mut rows = vec![row(&target.id, "a2a_receive")];
        if let Some(caller) = call.caller.workspace() {
            rows.push(row(caller, "a2a_send"));
        }
        for row in &rows {
            if let Err(error) = self.activity_record(row).await {
                tracing::warn!(workspace_id = %row.workspace_id, %error, "A2A call not traced");
            }
        }
        if call.caller == Caller::Operator
            && outcome.status == "ok"
            && let Some(response) = &outcome.response
        {
            self.hub.broadcast(|| {
                StreamEvent::new(
                    None,
                    EventKind::A2aResponse.as_str(),
                    Some(&target.id),
                    &json!({
                        "response_body": response,
                        "method": request.method,
                        "duration_ms": duration_ms,
                    }),
                    now,
                )
            });
        }
    }
}

/// The longest notification kept, in bytes.
pub const MAX_NOTIFY_BYTES: usize = 64 * 1024;

impl App {
    /// `POST /workspaces/:id/notify`: workspace `id`'s agent tells the operator
    /// `notice.message`. Broadcast as `AGENT_MESSAGE` and kept where Molecule's chat
    /// history reads it (`a2a_receive` from no source, method `notify`).
    pub async fn notify(&self, id: &str, notice: wire::Notify) -> Result<(), Error> {
        if notice.message.trim().is_empty() {
            return Err(super::agents::invalid_field(
                "message",
                "message is required",
            ));
        }
        super::limits::check_size("message", notice.message.len(), MAX_NOTIFY_BYTES)?;
        for (i, attachment) in notice.attachments.iter().enumerate() {
            if attachment.uri.is_empty() || attachment.name.is_empty() {
                return Err(super::agents::invalid_field(
                    "attachments",
                    format!("attachment[{i}]: uri and name are required"),
                ));
            }
        }
        let target = self.workspace_live(id).await?;
        let parts: Vec<Value> = notice
            .attachments
            .iter()
            .map(|file| json!({"kind": "file", "file": file}))
            .collect();
        let mut response = json!({"result": notice.message});
        if !parts.is_empty() {
            response["parts"] = Value::from(parts);
        }
        let preview: String = notice.message.chars().take(80).collect();
        let ellipsis = if preview.len() < notice.message.len() {
            "…"
        } else {
            ""
        };
        let now = self.store.now();
        let row = ActivityRow {
            id: new_id(),
            workspace_id: target.id.clone(),
            activity_type: "a2a_receive".to_owned(),
            source_id: None,
            target_id: None,
            method: Some("notify".to_owned()),
            summary: Some(format!("Agent message: {preview}{ellipsis}")),
            duration_ms: None,
            status: "ok".to_owned(),
            error_detail: None,
            request_body: None,
            response_body: Some(traced_body(&response)),
            created_at: now,
        };
        if !self.activity_record(&row).await? {
            return Err(Error::workspace_not_found(id));
        }
        self.hub.broadcast(|| {
            let mut payload = json!({
                "message": notice.message,
                "workspace_id": target.id,
                "name": target.name,
            });
            if !notice.attachments.is_empty() {
                payload["attachments"] = json!(notice.attachments);
            }
            StreamEvent::new(
                None,
                EventKind::AgentMessage.as_str(),
                Some(&target.id),
                &payload,
                now,
            )
        });
        Ok(())
    }
}

/// A body as the activity log keeps it: itself, or a note of its size when it is larger
/// than an activity body may be.
fn traced_body(body: &Value) -> String {
    let text = body.to_string();
    if text.len() <= MAX_ACTIVITY_BODY_BYTES {
        text
    } else {
        json!({"truncated": true, "bytes": text.len()}).to_string()
    }
}

fn fault_outcome(fault: &AgentFault) -> Outcome {
    let (status, detail) = match fault {
        AgentFault::Silent(limit) => (
            "timeout",
            format!("no answer within {}", humantime::format_duration(*limit)),
        ),
        AgentFault::Unreachable(detail) | AgentFault::BadAnswer(detail) => {
            ("error", detail.clone())
        }
    };
    Outcome {
        status,
        error_detail: Some(detail),
        response: None,
    }
}

fn where_it_is(route: &Route, id: &str) -> String {
    match route {
        Route::Socket(_) => format!("the socket of workspace {id}'s sandbox"),
        Route::Backend(url) => format!("the pod address {url}"),
        Route::Url(url) => url.clone(),
    }
}

/// An error with its causes, on one line (reqwest's own says only "error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// A `message/send` answer, read whole (at most [`MAX_ANSWER_BYTES`], each chunk within
/// the idle timeout) and checked to be a JSON-RPC response.
async fn read_answer(mut response: reqwest::Response, idle: Duration) -> Result<Bytes, AgentFault> {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type")
        .to_owned();
    let mut answer = Vec::new();
    loop {
        match tokio::time::timeout(idle, response.chunk()).await {
            Err(_) => return Err(AgentFault::Silent(idle)),
            Ok(Err(error)) => {
                return Err(AgentFault::BadAnswer(format!(
                    "the answer broke off: {}",
                    error_chain(&error)
                )));
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => {
                if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(AgentFault::BadAnswer(format!(
                        "HTTP {status}, {content_type}, more than {MAX_ANSWER_BYTES} bytes"
                    )));
                }
                answer.extend_from_slice(&chunk);
            }
        }
    }
    let is_json_rpc = matches!(
        serde_json::from_slice::<Value>(&answer),
        Ok(Value::Object(object)) if object.contains_key("jsonrpc")
    );
    if is_json_rpc {
        Ok(Bytes::from(answer))
    } else {
        Err(AgentFault::BadAnswer(format!(
            "HTTP {status}, {content_type}, {} bytes",
            answer.len()
        )))
    }
}

/// A relayed stream: the agent's response and what its trace needs.
struct Relay {
    response: reqwest::Response,
    trace: Option<StreamTrace>,
}

impl Relay {
    fn finish(&mut self, status: &'static str, detail: Option<String>) {
        if let Some(trace) = self.trace.as_mut() {
            trace.finish(status, detail);
        }
    }
}

/// A streamed call's trace, written once: when the stream ends, fails, goes silent, or
/// the caller goes away (the relay is dropped).
struct StreamTrace {
    app: App,
    call: A2aCall,
    target: WorkspaceRow,
    request: Normalized,
    started: Instant,
    tail: SseTail,
    done: bool,
    /// Held until the stream's trace is written: a caller cannot pile up unwritten
    /// traces past its cap.
    slot: Option<Slot>,
}

impl StreamTrace {
    fn finish(&mut self, status: &'static str, detail: Option<String>) {
        if self.done {
            return;
        }
        self.done = true;
        let outcome = Outcome {
            status,
            error_detail: detail,
            response: self.tail.last.take(),
        };
        let app = self.app.clone();
        let call = self.call.clone();
        let target = self.target.clone();
        let request = self.request.clone();
        let started = self.started;
        let slot = self.slot.take();
        // The stream's poll cannot wait for the database: the trace is written beside it
        // (not at all when no runtime is left: the process is ending).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                app.a2a_trace(&call, &target, &request, started, outcome)
                    .await;
                drop(slot);
            });
        }
    }
}

impl Drop for StreamTrace {
    fn drop(&mut self) {
        self.finish("error", Some("the caller went away".to_owned()));
    }
}

/// The last complete `data:` of an event stream, parsed, from the chunks as they pass.
#[derive(Debug, Default)]
struct SseTail {
    pending: Vec<u8>,
    last: Option<Value>,
}

impl SseTail {
    fn feed(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
        while let Some(end) = find_event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end).collect();
            let data: Vec<&str> = std::str::from_utf8(&event)
                .unwrap_or_default()
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|data| data.strip_prefix(' ').unwrap_or(data))
                .collect();
            if !data.is_empty()
                && let Ok(value) = serde_json::from_str(&data.join("\n"))
            {
                self.last = Some(value);
            }
        }
        if self.pending.len() > MAX_TRACED_EVENT_BYTES {
            // An event too large to trace: skipped, not held.
            self.pending.clear();
        }
    }
}

/// Where the first event of `bytes` ends (after its blank line), if it is complete.
fn find_event_end(bytes: &[u8]) -> Option<usize> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|at| at + 2);
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_form_body_is_wrapped_as_molecule_wraps_it() {
        let canvas = br#"{"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}]}},"extra":1}"#;
        let normalized = normalize(canvas).unwrap();
        let body = &normalized.body;
        assert_eq!(body["jsonrpc"], "2.0");
        assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
        assert_eq!(body["method"], "message/send");
        assert!(body["params"]["message"]["messageId"].is_string());
        assert!(body.get("extra").is_none(), "{body}");
        let bare = normalize(br#"{"params":{"message":{"role":"user","parts":[]}}}"#).unwrap();
        assert_eq!(bare.method, "message/send");
    }

    #[test]
    fn a_json_rpc_body_passes_untouched_but_for_a_missing_message_id() {
        let sent = br#"{"jsonrpc":"2.0","id":7,"method":"message/stream","params":{"message":{"role":"user","messageId":"m","parts":[]}}}"#;
        let normalized = normalize(sent).unwrap();
        assert_eq!(
            normalized.body,
            serde_json::from_slice::<Value>(sent).unwrap()
        );
        assert_eq!(normalized.id, json!(7));
        assert_eq!(normalized.method, "message/stream");
        for garbage in [&b"not json"[..], b"[1,2]", b"\"text\""] {
            assert!(normalize(garbage).is_err());
        }
    }

    /// A sandbox socket under a deep data directory is still reached.
    #[tokio::test]
    async fn a_socket_path_longer_than_an_address_is_reached_through_its_directory() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let socket = deep.join("agent.sock");
        assert!(socket.as_os_str().len() > MAX_SOCKET_PATH);
        let (bind_at, _held) = short_socket_path(&socket).unwrap();
        let listener = tokio::net::UnixListener::bind(&bind_at).unwrap();
        let router = axum::Router::new().route("/", axum::routing::post(|| async { "here" }));
        tokio::spawn(async move { axum::serve(listener, router).await });

        let clients = AgentClients::default();
        let client = clients.for_socket(&socket).unwrap();
        let answer = client.post("http://agent/").send().await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "here");
    }

    #[test]
    fn the_tail_keeps_the_last_complete_event() {
        let mut tail = SseTail::default();
        tail.feed(b"data: {\"a\":1}\n\nda");
        assert_eq!(tail.last, Some(json!({"a": 1})));
        tail.feed(b"ta: {\"b\":");
        assert_eq!(tail.last, Some(json!({"a": 1})));
        tail.feed(b"2}\r\n\r\n");
        assert_eq!(tail.last, Some(json!({"b": 2})));
    }
}
