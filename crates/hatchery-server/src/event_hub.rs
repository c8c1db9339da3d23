//! Live events: one tailer reads the event log after its cursor and fans each event out to
//! every subscriber through a bounded broadcast channel; broadcast-only events
//! (`WORKSPACE_HEARTBEAT`, `TASK_UPDATED`, `ACTIVITY_LOGGED`) go straight to the channel.
//!
//! The log is the source of truth, so nothing a subscriber misses is lost: the writer never
//! waits for a subscriber, a subscriber that falls more than the channel's capacity behind
//! is told so and catches up from the log by cursor, and other replicas' events arrive by
//! polling. Each event is serialised once, not once per subscriber.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use hatchery_store::{EventRow, Store};
use serde_json::Value;
use tokio::sync::{Notify, broadcast};

/// How many events a subscriber may fall behind before it is told it lagged (the
/// default of `ServerConfig::event_buffer`).
pub const DEFAULT_CAPACITY: usize = 4096;
/// How often the log is read when nobody pokes the tailer (events of other replicas).
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Events read from the log per query.
const PAGE: i64 = 1000;

/// One event as subscribers receive it, serialised once.
#[derive(Debug)]
pub struct StreamEvent {
    /// The log cursor; `None` for broadcast-only events.
    pub seq: Option<i64>,
    /// Wire name.
    pub event_type: String,
    /// The workspace it is about, if any.
    pub workspace_id: Option<String>,
    /// `{"type","workspace_id","timestamp","data"}`: the SSE `data:` line.
    pub sse_json: String,
    /// `{"event","workspace_id","timestamp","payload"}`: the WebSocket message.
    pub ws_json: String,
}

impl StreamEvent {
    /// Build from the parts; `created_at` in Unix microseconds.
    #[must_use]
    pub fn new(
        seq: Option<i64>,
        event_type: &str,
        workspace_id: Option<&str>,
        payload: &Value,
        created_at: i64,
    ) -> Self {
        let millis = created_at / 1000;
        let timestamp = crate::http::views::timestamp(created_at);
        let sse_json = serde_json::json!({
            "type": event_type,
            "workspace_id": workspace_id,
            "timestamp": millis,
            "data": payload,
        })
        .to_string();
        let ws_json = serde_json::json!({
            "event": event_type,
            "workspace_id": workspace_id,
            "timestamp": timestamp,
            "payload": payload,
        })
        .to_string();
        Self {
            seq,
            event_type: event_type.to_owned(),
            workspace_id: workspace_id.map(str::to_owned),
            sse_json,
            ws_json,
        }
    }

    /// From a row of the log.
    #[must_use]
    pub fn from_row(row: &EventRow) -> Self {
        let payload = serde_json::from_str(&row.payload).unwrap_or(Value::Null);
        Self::new(
            Some(row.seq),
            &row.event_type,
            row.workspace_id.as_deref(),
            &payload,
            row.created_at,
        )
    }
}

/// The fan-out point. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sender: broadcast::Sender<Arc<StreamEvent>>,
    poke: Notify,
    /// The last cursor broadcast.
    cursor: AtomicI64,
}

impl EventHub {
    /// A hub whose tailer starts after `cursor` (the newest event at start-up), letting a
    /// subscriber fall `capacity` events behind before it lags.
    #[must_use]
    pub fn new(cursor: i64, capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            inner: Arc::new(Inner {
                sender,
                poke: Notify::new(),
                cursor: AtomicI64::new(cursor),
            }),
        }
    }

    /// Say that events were just written, so the tailer reads them now.
    pub fn poke(&self) {
        self.inner.poke.notify_one();
    }

    /// Send a broadcast-only event (never stored).
    pub fn broadcast(&self, event: StreamEvent) {
        // No subscribers is not an error.
        let _ = self.inner.sender.send(Arc::new(event));
    }

    /// A new subscription: every event sent from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StreamEvent>> {
        self.inner.sender.subscribe()
    }

    /// How many subscribers are connected.
    #[must_use]
    pub fn subscribers(&self) -> usize {
        self.inner.sender.receiver_count()
    }

    /// Tail the log until the process stops: on each poke, and every poll interval.
    pub async fn run_tailer(self, store: Store) {
        loop {
            tokio::select! {
                () = self.inner.poke.notified() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            if let Err(error) = self.publish_new(&store).await {
                tracing::warn!(%error, "event tailer: cannot read the event log; retrying");
            }
        }
    }

    /// Broadcast every logged event after the cursor.
    pub async fn publish_new(&self, store: &Store) -> Result<(), hatchery_store::StoreError> {
        loop {
            let after = self.inner.cursor.load(Ordering::Acquire);
            let rows = store.event_list_after(after, None, PAGE).await?;
            let Some(last) = rows.last().map(|row| row.seq) else {
                return Ok(());
            };
            for row in &rows {
                let _ = self.inner.sender.send(Arc::new(StreamEvent::from_row(row)));
            }
            self.inner.cursor.store(last, Ordering::Release);
            if i64::try_from(rows.len()).unwrap_or(PAGE) < PAGE {
                return Ok(());
            }
        }
    }
}
