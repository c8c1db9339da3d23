//! A2A: the JSON-RPC 2.0 messages people and agents exchange through
//! `POST /workspaces/:id/a2a`, in the shapes of the A2A protocol as Molecule's runtime and
//! canvas speak it (`message/send` answers with a message; `message/stream` answers with
//! Server-Sent Events, each `data:` a response whose result is a status update, an
//! artifact chunk or the final message).
//!
//! Only what hatchery reads or writes is typed; everything else an agent or a client puts
//! in a message travels untouched (`extra`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol version every request and response names.
pub const JSONRPC_VERSION: &str = "2.0";
/// Send a message; the answer is one JSON-RPC response.
pub const METHOD_SEND: &str = "message/send";
/// Send a message; the answer is a stream of JSON-RPC responses (Server-Sent Events).
pub const METHOD_STREAM: &str = "message/stream";
/// What a sandboxed agent registers, followed by its workspace id: its own address means
/// nothing to its peers (a sandbox without network, a pod's private address), and the
/// control plane reaches it through its backend, never at this URL; discovery answers the
/// proxy's route for it. `localhost`, so it passes the URL rules of registration.
pub const SANDBOX_URL_PREFIX: &str = "http://localhost/hatchery-sandbox/";

/// JSON-RPC's error codes, as the A2A protocol uses them.
pub mod codes {
    /// The body is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// JSON, but not a JSON-RPC request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// A method the agent does not serve.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The method's params do not read.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The agent failed while answering.
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// A JSON-RPC request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// The caller's id for the call, echoed in the answer (a string, a number or null).
    #[serde(default)]
    pub id: Value,
    /// `message/send`, `message/stream`, …
    pub method: String,
    /// The method's arguments; for the message methods, [`MessageParams`].
    #[serde(default)]
    pub params: Value,
}

/// The params of `message/send` and `message/stream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageParams {
    /// What is said.
    pub message: Message,
    /// Anything else the caller sent (`metadata`, `configuration`, …), untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A message: who says it, in which conversation, and its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// `user` for a person or a calling agent, `agent` for an answer.
    pub role: String,
    /// Unique per message; the proxy fills it in when a caller leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The conversation it belongs to; an agent starts one when a message names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// Text, files, data.
    #[serde(default)]
    pub parts: Vec<Part>,
    /// Anything else (`kind`, `taskId`, `metadata`, …), untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// The text parts, joined by newlines.
    #[must_use]
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self.parts.iter().filter_map(Part::text).collect();
        texts.join("\n")
    }
}

/// One part of a message: `{"kind": "text", "text": …}`, a file, data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// `text`, `file` or `data`.
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The rest of a part (`file`, `data`, `metadata`), untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Part {
    /// A text part.
    #[must_use]
    pub fn text_part(text: impl Into<String>) -> Self {
        Self {
            kind: "text".to_owned(),
            text: Some(text.into()),
            extra: Map::new(),
        }
    }

    /// The text, if this is a text part.
    #[must_use]
    pub fn text(&self) -> Option<&str> {
        (self.kind == "text")
            .then_some(self.text.as_deref())
            .flatten()
    }
}

/// A JSON-RPC response: a result or an error, for the request with `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response<T> {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// The request's id.
    pub id: Value,
    /// What the method answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<T>,
    /// Why it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl<T> Response<T> {
    /// The answer `result` to the request `id`.
    pub fn success(id: Value, result: T) -> Self {
        Self {
            jsonrpc: JSONRPC_VERSION.to_owned(),
            id,
            result: Some(result),
            error: None,
        }
    }

    /// The refusal `code` of the request `id`.
    pub fn failure(id: Value, code: i64, message: impl Into<String>) -> Self {
        Self {
            jsonrpc: JSONRPC_VERSION.to_owned(),
            id,
            result: None,
            error: Some(RpcError {
                code,
                message: message.into(),
                data: None,
            }),
        }
    }
}

/// A JSON-RPC error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// One of [`codes`], or the agent's own.
    pub code: i64,
    /// In words.
    pub message: String,
    /// More, at the agent's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// What a message method answers with: the final message, or (streamed) a step on the way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reply {
    /// The answer.
    Message(Message),
    /// The task's state changed (`working`, `completed`, …).
    #[serde(rename_all = "camelCase")]
    StatusUpdate {
        /// The task.
        task_id: String,
        /// The conversation.
        context_id: String,
        /// `{"state": "working"}`, …
        status: Value,
        /// Whether this is the stream's last event.
        #[serde(rename = "final")]
        last: bool,
    },
    /// A chunk of the answer as it is produced.
    #[serde(rename_all = "camelCase")]
    ArtifactUpdate {
        /// The task.
        task_id: String,
        /// The conversation.
        context_id: String,
        /// `{"artifactId": …, "parts": […]}`.
        artifact: Artifact,
        /// Whether this chunk adds to the artifact's earlier ones.
        append: bool,
        /// Whether it is the artifact's last chunk.
        last_chunk: bool,
    },
}

/// A piece of output an agent streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Names the artifact across its chunks.
    pub artifact_id: String,
    /// This chunk's parts.
    pub parts: Vec<Part>,
}

impl Reply {
    /// The text this step carries: a message's, or an artifact chunk's.
    #[must_use]
    pub fn text(&self) -> Option<String> {
        match self {
            Self::Message(message) => Some(message.text()),
            Self::ArtifactUpdate { artifact, .. } => Some(
                artifact
                    .parts
                    .iter()
                    .filter_map(Part::text)
                    .collect::<String>(),
            ),
            Self::StatusUpdate { .. } => None,
        }
    }
}

/// `POST /workspaces/:id/notify`: an agent's message to the operator, outside any call
/// (an interim update, a result that came later).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notify {
    /// The text, as the operator reads it.
    pub message: String,
    /// Files the message points to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<NotifyAttachment>,
}

/// A file a notification points to (Molecule's shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NotifyAttachment {
    /// Where it is.
    pub uri: String,
    /// What to call it.
    pub name: String,
    /// Its media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The canvas's and Molecule runtime's shapes read, and unknown fields survive.
    #[test]
    fn molecule_shaped_messages_round_trip() {
        let sent = json!({
            "message": {
                "role": "user",
                "messageId": "m-1",
                "parts": [
                    {"kind": "text", "text": "hello"},
                    {"kind": "file", "file": {"name": "a.txt", "uri": "x"}}
                ]
            },
            "metadata": {"history": []}
        });
        let params: MessageParams = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(params.message.text(), "hello");
        assert_eq!(params.message.message_id.as_deref(), Some("m-1"));
        assert_eq!(serde_json::to_value(&params).unwrap(), sent);
    }

    #[test]
    fn replies_are_tagged_by_kind() {
        let chunk: Reply = serde_json::from_value(json!({
            "kind": "artifact-update", "taskId": "t", "contextId": "c",
            "artifact": {"artifactId": "a", "parts": [{"kind": "text", "text": "hel"}]},
            "append": false, "lastChunk": false
        }))
        .unwrap();
        assert_eq!(chunk.text().as_deref(), Some("hel"));
        let status = serde_json::to_value(Reply::StatusUpdate {
            task_id: "t".into(),
            context_id: "c".into(),
            status: json!({"state": "working"}),
            last: false,
        })
        .unwrap();
        assert_eq!(status["kind"], "status-update");
        assert_eq!(status["final"], false);
        let answer = Reply::Message(Message {
            role: "agent".into(),
            message_id: None,
            context_id: Some("c".into()),
            parts: vec![Part::text_part("hi")],
            extra: Map::new(),
        });
        assert_eq!(serde_json::to_value(&answer).unwrap()["kind"], "message");
    }

    #[test]
    fn a_response_is_a_result_or_an_error() {
        let failed = Response::<Reply>::failure(json!(7), codes::METHOD_NOT_FOUND, "no");
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"jsonrpc": "2.0", "id": 7, "error": {"code": -32601, "message": "no"}})
        );
    }
}

/// The header with which a caller of `POST /workspaces/:id/a2a` asks for a `message/send`
/// its target cannot take now to be queued (`true`) rather than refused.
pub const QUEUE_HEADER: &str = "X-Hatchery-Queue";
/// What a queued message's answer says (Molecule's words).
pub const QUEUED_MESSAGE: &str =
    "workspace agent busy — request queued, will dispatch when capacity available";

/// `202` from `POST /workspaces/:id/a2a` with `X-Hatchery-Queue: true`: the target could
/// not take the message now; it is stored and delivered when it can (Molecule's shape).
/// The agent's answer is not returned to anyone: it is in the activity log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Queued {
    /// Always `true`.
    pub queued: bool,
    /// The queued message's id; the same `messageId` queued again names the same.
    pub queue_id: String,
    /// How many messages to the target are queued or being delivered, this one included.
    pub queue_depth: i64,
    /// [`QUEUED_MESSAGE`].
    pub message: String,
}

/// A message queued for a workspace (`GET /workspaces/:id/a2a/queue`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueuedMessageView {
    /// Its id (the `queue_id` its caller was told).
    pub id: String,
    /// Who sent it: a workspace id, or `operator`.
    pub caller: String,
    /// Its JSON-RPC method (`message/send`).
    pub method: String,
    /// Its `params.message.messageId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Where it is.
    pub status: hatchery_core::QueuedMessageStatus,
    /// How many times its delivery was tried.
    pub attempts: i64,
    /// Why it failed, or (queued) why its delivery waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was queued, RFC 3339 in UTC.
    pub created_at: String,
    /// When its status last changed, RFC 3339 in UTC.
    pub updated_at: String,
}
