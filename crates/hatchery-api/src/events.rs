//! `/events` and `/ws`: the event log as it is listed, and an event as the live streams
//! carry it (the SSE frame's data, the WebSocket message).

use serde::{Deserialize, Serialize};
use serde_json::Value;

// The fields of the two stream messages are declared in alphabetical order: before these
// types the server built them with `json!`, whose objects sort their keys, and the bytes on
// the wire stay as they were.

/// A persisted event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    /// Its id.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub id: String,
    /// Its place in the log: the cursor `after=` and `Last-Event-ID` take.
    pub seq: i64,
    /// `WORKSPACE_ONLINE`, `WORKSPACE_PROVISION_FAILED`, …
    pub event_type: String,
    /// The workspace it is about, if any.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub workspace_id: Option<String>,
    /// What happened, by event type.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Value,
    /// When.
    pub created_at: String,
}

/// The `data:` of an event on an SSE stream (`/events/stream`,
/// `/workspaces/:id/events/stream`); the frame's `id:` is its seq.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamMessage {
    /// What happened, by event type.
    pub data: Value,
    /// When, in milliseconds since the epoch.
    pub timestamp: i64,
    /// `WORKSPACE_ONLINE`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The workspace it is about, if any.
    pub workspace_id: Option<String>,
}

/// An event as the WebSocket (`/ws`) sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SocketMessage {
    /// `WORKSPACE_ONLINE`, …
    pub event: String,
    /// What happened, by event type.
    pub payload: Value,
    /// hatchery's addition: the cursor to resume after (`?after=` on `/ws`); null for an
    /// event that is broadcast only.
    pub seq: Option<i64>,
    /// When, RFC 3339 in UTC.
    pub timestamp: String,
    /// The workspace it is about, if any.
    pub workspace_id: Option<String>,
}

/// The payload of `WORKSPACE_PROVISION_FAILED`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProvisionFailed {
    /// Why the start failed, in words (also the workspace's `failure_reason`).
    pub error: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{SocketMessage, StreamMessage};

    /// The messages' bytes are the ones `json!` made before these types.
    #[test]
    fn the_stream_messages_spell_their_keys_in_order() {
        let payload = json!({"b": 1, "a": [2.5, null]});
        let sse = StreamMessage {
            data: payload.clone(),
            timestamp: 1_700_000_000_123,
            kind: "WORKSPACE_ONLINE".to_owned(),
            workspace_id: None,
        };
        let before = json!({
            "type": "WORKSPACE_ONLINE",
            "workspace_id": null,
            "timestamp": 1_700_000_000_123_i64,
            "data": payload,
        });
        assert_eq!(serde_json::to_string(&sse).unwrap(), before.to_string());
        let socket = SocketMessage {
            event: "WORKSPACE_ONLINE".to_owned(),
            payload: payload.clone(),
            seq: Some(7),
            timestamp: "2023-11-14T22:13:20.123000Z".to_owned(),
            workspace_id: Some("w".to_owned()),
        };
        let before = json!({
            "event": "WORKSPACE_ONLINE",
            "workspace_id": "w",
            "timestamp": "2023-11-14T22:13:20.123000Z",
            "payload": payload,
            "seq": 7,
        });
        assert_eq!(serde_json::to_string(&socket).unwrap(), before.to_string());
    }
}
