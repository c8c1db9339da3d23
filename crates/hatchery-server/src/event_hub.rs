//! Live events: one tailer reads the event log after its cursor and fans each event out to
//! every subscriber through a bounded broadcast channel; broadcast-only events
//! (`WORKSPACE_HEARTBEAT`, `TASK_UPDATED`, `ACTIVITY_LOGGED`) go straight to the channel.
//!
//! The log is the source of truth, so nothing a subscriber misses is lost: the writer never
//! waits for a subscriber, a subscriber that falls more than the channel's capacity behind
//! is told so and catches up from the log by cursor, and other replicas' events arrive by
//! polling. Each event is serialised once, not once per subscriber.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use hatchery_store::{EventRow, Store};
use serde_json::Value;
use tokio::sync::{Notify, broadcast};

use crate::app::limits::PAGE_BUDGET_BYTES;

/// How many batches a subscriber may fall behind before it is told it lagged (the
/// default of `ServerConfig::event_buffer`).
pub const DEFAULT_CAPACITY: usize = 4096;
/// How often the log is read when nobody pokes the tailer (events of other replicas).
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Events read from the log per query.
const PAGE: i64 = 1000;
/// The shortest time between two batches.
const GATHER: Duration = Duration::from_millis(20);
/// The most broadcast-only events waiting for one batch.
const PENDING_LIMIT: usize = 65_536;

/// One event as subscribers receive it: its SSE frame is built once, not once per
/// subscriber; its WebSocket message only when a WebSocket asks.
#[derive(Debug)]
pub struct StreamEvent {
    /// The log cursor; `None` for broadcast-only events.
    pub seq: Option<i64>,
    /// Wire name.
    pub event_type: String,
    /// The workspace it is about, if any.
    pub workspace_id: Option<String>,
    /// The payload object.
    pub payload: Value,
    /// When it happened, Unix microseconds.
    pub created_at: i64,
    /// `id: <seq>` (logged events only) and `data: {"type","workspace_id","timestamp","data"}`.
    pub sse_frame: Bytes,
    ws_json: OnceLock<String>,
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
        let data = serde_json::json!({
            "type": event_type,
            "workspace_id": workspace_id,
            "timestamp": created_at / 1000,
            "data": payload,
        });
        let sse_frame = match seq {
            Some(seq) => format!("id: {seq}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        };
        Self {
            seq,
            event_type: event_type.to_owned(),
            workspace_id: workspace_id.map(str::to_owned),
            payload: payload.clone(),
            created_at,
            sse_frame: Bytes::from(sse_frame),
            ws_json: OnceLock::new(),
        }
    }

    /// `{"event","workspace_id","timestamp","payload"}`: the WebSocket message.
    pub fn ws_json(&self) -> &str {
        self.ws_json.get_or_init(|| {
            serde_json::json!({
                "event": self.event_type,
                "workspace_id": self.workspace_id,
                "timestamp": crate::http::views::timestamp(self.created_at),
                "payload": self.payload,
                // hatchery's addition: the cursor to resume after (`?after=` on /ws).
                "seq": self.seq,
            })
            .to_string()
        })
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

/// Events published together: one channel message, one wake-up per subscriber, and — for
/// a subscriber that wants them all — one write of bytes built once.
#[derive(Debug)]
pub struct Batch {
    /// The events, logged ones in cursor order.
    pub events: Vec<Arc<StreamEvent>>,
    /// Every event's SSE frame, concatenated.
    pub sse: Bytes,
}

impl Batch {
    fn new(events: Vec<Arc<StreamEvent>>) -> Self {
        let sse = sse_frames(&events);
        Self { events, sse }
    }
}

/// The SSE frames of `events`, one after the other.
#[must_use]
pub fn sse_frames(events: &[Arc<StreamEvent>]) -> Bytes {
    let mut sse = Vec::with_capacity(events.iter().map(|e| e.sse_frame.len()).sum());
    for event in events {
        sse.extend_from_slice(&event.sse_frame);
    }
    Bytes::from(sse)
}

/// The fan-out point. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sender: broadcast::Sender<Arc<Batch>>,
    poke: Notify,
    /// Broadcast-only events waiting for the next batch.
    pending: Mutex<Vec<Arc<StreamEvent>>>,
    /// The last cursor broadcast.
    cursor: AtomicI64,
}

impl EventHub {
    /// A hub whose tailer starts after `cursor` (the newest event at start-up), letting a
    /// subscriber fall `capacity` batches behind before it lags.
    #[must_use]
    pub fn new(cursor: i64, capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            inner: Arc::new(Inner {
                sender,
                poke: Notify::new(),
                pending: Mutex::new(Vec::new()),
                cursor: AtomicI64::new(cursor),
            }),
        }
    }

    /// Say that events were just written, so the tailer reads them now.
    pub fn poke(&self) {
        self.inner.poke.notify_one();
    }

    /// Send a broadcast-only event (never stored) with the next batch, built only if
    /// anyone listens.
    pub fn broadcast(&self, event: impl FnOnce() -> StreamEvent) {
        if self.inner.sender.receiver_count() == 0 {
            return;
        }
        let event = Arc::new(event());
        let mut pending = self.pending();
        // Bounded: a flood of broadcast-only events beyond this is dropped, never queued
        // without end (they are "latest state" notices; the log holds what matters).
        if pending.len() < PENDING_LIMIT {
            pending.push(event);
        }
        drop(pending);
        self.poke();
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<Arc<StreamEvent>>> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new subscription: every batch sent from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.inner.sender.subscribe()
    }

    /// How many subscribers are connected.
    #[must_use]
    pub fn subscribers(&self) -> usize {
        self.inner.sender.receiver_count()
    }

    /// Tail the log until the process stops: on each poke, and every poll interval. At
    /// most one batch goes out per gather interval: a lone event is sent at once, a burst
    /// goes out as one batch, so a thousand subscribers are woken tens of times a second,
    /// not thousands.
    pub async fn run_tailer(self, store: Store) {
        let mut last_publish = tokio::time::Instant::now();
        let mut outage = crate::supervision::OutageLog::new("the event tailer");
        loop {
            tokio::select! {
                () = self.inner.poke.notified() => {
                    tokio::time::sleep_until(last_publish + GATHER).await;
                }
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            last_publish = tokio::time::Instant::now();
            // The cursor moves only past what was broadcast: after an outage the tailer
            // goes on from where it was, and nothing written meanwhile is skipped.
            match self.publish_new(&store).await {
                Ok(()) => outage.succeeded(),
                Err(error) => outage.failed(&error),
            }
        }
    }

    /// Broadcast every logged event after the cursor, with the pending broadcast-only
    /// ones.
    pub async fn publish_new(&self, store: &Store) -> Result<(), hatchery_store::StoreError> {
        loop {
            let after = self.inner.cursor.load(Ordering::Acquire);
            let page = store
                .event_list_after(after, None, PAGE, PAGE_BUDGET_BYTES)
                .await?;
            let rows = page.rows;
            let mut events: Vec<Arc<StreamEvent>> = rows
                .iter()
                .map(|row| Arc::new(StreamEvent::from_row(row)))
                .collect();
            events.append(&mut self.pending());
            if !events.is_empty() {
                // Nobody listening is not an error.
                let _ = self.inner.sender.send(Arc::new(Batch::new(events)));
            }
            if let Some(last) = rows.last().map(|row| row.seq) {
                self.inner.cursor.store(last, Ordering::Release);
            }
            if i64::try_from(rows.len()).unwrap_or(PAGE) < PAGE && !page.truncated {
                return Ok(());
            }
        }
    }
}

/// What a subscriber gets next.
#[derive(Debug)]
pub enum Delivery {
    /// A whole batch, all of it new and wanted: its prebuilt bytes can be sent as they are.
    Whole(Arc<Batch>),
    /// Some events, in order.
    Events(Vec<Arc<StreamEvent>>),
    /// The subscriber fell `missed` batches behind; what follows is read from the log
    /// after `resume_after` (broadcast-only events in the gap are gone).
    Lagged {
        /// Batches dropped from the channel.
        missed: u64,
        /// The last cursor delivered before the gap.
        resume_after: i64,
    },
    /// Nothing happened for the idle interval: time for a keep-alive.
    Idle,
    /// Retention deleted events after the subscriber's cursor before it read them: the
    /// stream ends here, and the client re-reads the current state (its cursor would be
    /// refused with 410 now).
    Expired {
        /// The highest seq retention deleted.
        pruned_through: i64,
    },
}

/// Why a stream could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The log could not be read.
    #[error(transparent)]
    Store(#[from] hatchery_store::StoreError),
    /// Retention deleted events after the cursor asked for.
    #[error("cursor expired: events after it were deleted (through seq {pruned_through})")]
    Expired {
        /// The highest seq retention deleted.
        pruned_through: i64,
    },
}

impl From<OpenError> for crate::error::ApiError {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::Store(error) => {
                crate::app::store_error("failed to open the event stream")(error)
            }
            OpenError::Expired { pruned_through } => {
                crate::app::events::cursor_expired(pruned_through)
            }
        }
    }
}

/// One subscriber's position: the channel, the last cursor it was given, and whether it
/// must read the log before the channel (at the start, and after a lag).
#[derive(Debug)]
pub struct Cursor {
    receiver: broadcast::Receiver<Arc<Batch>>,
    store: Store,
    filter: Option<String>,
    last_seq: i64,
    catching_up: bool,
    /// Retention overtook the cursor: the stream is over.
    expired: bool,
}

/// What one catch-up read found.
enum CatchUp {
    /// The next events after the cursor (none: caught up).
    Rows(Vec<EventRow>),
    /// Retention deleted events after the cursor, through this seq.
    Expired(i64),
}

/// Events read from the log per catch-up query.
const CATCH_UP_PAGE: i64 = 500;

impl Cursor {
    /// The next page of the log after the cursor, or the pruned horizon when retention
    /// deleted events after the cursor (asked after the read: a deletion the read missed
    /// has moved the horizon by then).
    async fn catch_up_page(&self) -> Result<CatchUp, hatchery_store::StoreError> {
        let page = self
            .store
            .event_list_after(
                self.last_seq,
                self.filter.as_deref(),
                CATCH_UP_PAGE,
                PAGE_BUDGET_BYTES,
            )
            .await?;
        let pruned_through = self.store.event_pruned_through().await?;
        if self.last_seq < pruned_through {
            return Ok(CatchUp::Expired(pruned_through));
        }
        Ok(CatchUp::Rows(page.rows))
    }

    /// A cursor after `after`, or, without it, from now on. Subscribes before it reads
    /// the log's end, so nothing falls between the two. Refused when retention deleted
    /// events after `after` (the catch-up checks again as it reads).
    pub async fn open(
        hub: &EventHub,
        store: Store,
        filter: Option<String>,
        after: Option<i64>,
    ) -> Result<Self, OpenError> {
        let receiver = hub.subscribe();
        let newest = store.event_last_seq().await?;
        if let Some(after) = after {
            let pruned_through = store.event_pruned_through().await?;
            if after < pruned_through {
                return Err(OpenError::Expired { pruned_through });
            }
        }
        // A cursor from the future (a reset database, a made-up id) would hide every new
        // event until the log caught up with it: resume from the newest instead.
        let last_seq = after.map_or(newest, |after| after.min(newest));
        Ok(Self {
            receiver,
            store,
            filter,
            last_seq,
            catching_up: true,
            expired: false,
        })
    }

    fn wants(&self, event: &StreamEvent) -> bool {
        event.seq.is_none_or(|seq| seq > self.last_seq)
            && self
                .filter
                .as_deref()
                .is_none_or(|id| event.workspace_id.as_deref() == Some(id))
    }

    fn advance(&mut self, events: &[Arc<StreamEvent>]) {
        if let Some(seq) = events.iter().filter_map(|e| e.seq).max() {
            self.last_seq = self.last_seq.max(seq);
        }
    }

    /// The next delivery; `None` when the stream should end (the log is unreadable: the
    /// client resumes from its cursor).
    pub async fn next(&mut self, idle: Duration) -> Option<Delivery> {
        if self.expired {
            return None;
        }
        loop {
            if self.catching_up {
                let rows = match self.catch_up_page().await {
                    Ok(CatchUp::Rows(rows)) => rows,
                    Ok(CatchUp::Expired(pruned_through)) => {
                        self.expired = true;
                        return Some(Delivery::Expired { pruned_through });
                    }
                    Err(error) => {
                        tracing::warn!(%error, "event stream: cannot read the log; closing so the client resumes");
                        return None;
                    }
                };
                if rows.is_empty() {
                    self.catching_up = false;
                    continue;
                }
                let events: Vec<Arc<StreamEvent>> = rows
                    .iter()
                    .map(|row| Arc::new(StreamEvent::from_row(row)))
                    .collect();
                self.advance(&events);
                return Some(Delivery::Events(events));
            }
            let Ok(received) = tokio::time::timeout(idle, self.receiver.recv()).await else {
                return Some(Delivery::Idle);
            };
            match received {
                Ok(batch) => {
                    let all_wanted = self.filter.is_none()
                        && batch
                            .events
                            .iter()
                            .all(|e| e.seq.is_none_or(|seq| seq > self.last_seq));
                    if all_wanted {
                        self.advance(&batch.events);
                        return Some(Delivery::Whole(batch));
                    }
                    let events: Vec<Arc<StreamEvent>> = batch
                        .events
                        .iter()
                        .filter(|e| self.wants(e))
                        .cloned()
                        .collect();
                    // Filtered-out events still move the cursor: they were seen.
                    self.advance(&batch.events);
                    if !events.is_empty() {
                        return Some(Delivery::Events(events));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.catching_up = true;
                    return Some(Delivery::Lagged {
                        missed,
                        resume_after: self.last_seq,
                    });
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
