//! Live events: one tailer reads the event log after its cursor and fans each event out to
//! every subscriber through a ring of recent batches, bounded in count and in bytes;
//! broadcast-only events (`WORKSPACE_HEARTBEAT`, `TASK_UPDATED`, `ACTIVITY_LOGGED`) go
//! straight to the ring.
//!
//! The log is the source of truth, so nothing a subscriber misses is lost: the writer never
//! waits for a subscriber, a subscriber that falls behind the ring's oldest batch is told
//! so and catches up from the log by cursor, and other replicas' events arrive by polling.
//! Each event is serialised once, not once per subscriber. So a subscriber that never
//! reads holds at most the one batch it is being sent; the ring holds the rest, within
//! its budget, whoever reads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use hatchery_api::events::{SocketMessage, StreamMessage};
use hatchery_store::{EventRow, Store};
use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::app::limits::PAGE_BUDGET_BYTES;

/// How far behind a stream subscriber may fall before it is told it lagged and catches up
/// from the log: the event hub keeps the newest batches within both bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventBuffer {
    /// The most batches kept.
    pub batches: usize,
    /// The most memory the kept batches may take, estimated (see `Batch::weight`); the
    /// newest batch is kept whatever its size.
    pub bytes: usize,
}

impl Default for EventBuffer {
    fn default() -> Self {
        Self {
            batches: 4096,
            bytes: 32 << 20,
        }
    }
}
/// How often the log is read when nobody pokes the tailer (events of other replicas).
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Events read from the log per query.
const PAGE: i64 = 1000;
/// The shortest time between two batches.
const GATHER: Duration = Duration::from_millis(20);
/// The most broadcast-only events waiting for the next batch, in bytes of their frames.
const PENDING_LIMIT_BYTES: usize = 1 << 20;
/// A batch is closed once its frames reach this size (one event may exceed it alone), so
/// a stalled subscriber pins little.
const BATCH_BYTES: usize = 256 << 10;

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
    /// What happened, by event type (a JSON object).
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
        let data = StreamMessage {
            data: payload.clone(),
            timestamp: created_at / 1000,
            kind: event_type.to_owned(),
            workspace_id: workspace_id.map(str::to_owned),
        };
        // Plain data (strings and a parsed `Value`) always serializes.
        let data = serde_json::to_string(&data).unwrap_or_default();
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
            let message = SocketMessage {
                event: self.event_type.clone(),
                payload: self.payload.clone(),
                seq: self.seq,
                timestamp: crate::wire::timestamp(self.created_at),
                workspace_id: self.workspace_id.clone(),
            };
            // Plain data (strings and a parsed `Value`) always serializes.
            serde_json::to_string(&message).unwrap_or_default()
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

/// Events published together: one ring entry, one wake-up per subscriber, and — for a
/// subscriber that wants them all — one write of bytes built once.
#[derive(Debug)]
pub struct Batch {
    /// The events, logged ones in cursor order.
    pub events: Vec<Arc<StreamEvent>>,
    /// Every event's SSE frame, concatenated.
    pub sse: Bytes,
    /// The memory it holds, estimated: its frames twice (each event's and the
    /// concatenation), the parsed payloads and the WebSocket text about as much again
    /// each, and a fixed cost an event.
    weight: usize,
}

impl Batch {
    fn new(events: Vec<Arc<StreamEvent>>) -> Self {
        let sse = sse_frames(&events);
        let weight = 4 * sse.len() + 256 * events.len();
        Self {
            events,
            sse,
            weight,
        }
    }
}

/// The batches subscribers may still read: the newest ones, within the buffer's bounds.
#[derive(Debug, Default)]
struct Ring {
    batches: VecDeque<Arc<Batch>>,
    /// The number of the oldest batch kept (batches are numbered as they are published).
    first: u64,
    /// The weight of the batches kept.
    weight: usize,
}

impl Ring {
    /// The number the next batch will get.
    fn end(&self) -> u64 {
        self.first + self.batches.len() as u64
    }

    fn push(&mut self, batch: Arc<Batch>, bounds: EventBuffer) {
        self.weight += batch.weight;
        self.batches.push_back(batch);
        while self.batches.len() > 1
            && (self.batches.len() > bounds.batches || self.weight > bounds.bytes)
        {
            if let Some(oldest) = self.batches.pop_front() {
                self.weight -= oldest.weight;
                self.first += 1;
            }
        }
    }

    /// Forget every batch (nobody is subscribed); numbering goes on.
    fn clear(&mut self) {
        self.first = self.end();
        self.batches.clear();
        self.weight = 0;
    }
}

/// Broadcast-only events waiting for the next batch.
#[derive(Debug, Default)]
struct Pending {
    events: Vec<Arc<StreamEvent>>,
    bytes: usize,
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
    ring: Mutex<Ring>,
    bounds: EventBuffer,
    /// Tells subscribers the ring's end moved; its receivers are the subscribers.
    published: watch::Sender<u64>,
    poke: Notify,
    pending: Mutex<Pending>,
    /// The last cursor broadcast.
    cursor: AtomicI64,
}

/// Lock, and go on after a panic elsewhere: every critical section leaves its data whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EventHub {
    /// A hub whose tailer starts after `cursor` (the newest event at start-up), letting a
    /// subscriber fall as far behind as `bounds` allow before it lags.
    #[must_use]
    pub fn new(cursor: i64, bounds: EventBuffer) -> Self {
        let bounds = EventBuffer {
            batches: bounds.batches.max(1),
            bytes: bounds.bytes,
        };
        Self {
            inner: Arc::new(Inner {
                ring: Mutex::new(Ring::default()),
                bounds,
                published: watch::Sender::new(0),
                poke: Notify::new(),
                pending: Mutex::new(Pending::default()),
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
        if self.subscribers() == 0 {
            return;
        }
        let event = Arc::new(event());
        let mut pending = lock(&self.inner.pending);
        // Bounded: a flood of broadcast-only events beyond this is dropped, never queued
        // without end (they are "latest state" notices; the log holds what matters).
        if pending.bytes + event.sse_frame.len() <= PENDING_LIMIT_BYTES {
            pending.bytes += event.sse_frame.len();
            pending.events.push(event);
        }
        drop(pending);
        self.poke();
    }

    /// A new subscription: every batch published from now on.
    #[must_use]
    pub fn subscribe(&self) -> Subscription {
        // Watch first: a batch published between the two is both seen and waited for.
        let published = self.inner.published.subscribe();
        let next = lock(&self.inner.ring).end();
        Subscription {
            inner: Arc::clone(&self.inner),
            published,
            next,
        }
    }

    /// How many subscribers are connected.
    #[must_use]
    pub fn subscribers(&self) -> usize {
        self.inner.published.receiver_count()
    }

    /// The estimated memory the kept batches take (at most the buffer's byte bound, or
    /// the newest batch alone).
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        lock(&self.inner.ring).weight
    }

    /// Publish `events` in batches of at most `BATCH_BYTES` of frames (one event may exceed
    /// it alone), if anyone listens.
    fn publish(&self, events: Vec<Arc<StreamEvent>>) {
        let mut ring = lock(&self.inner.ring);
        if self.subscribers() == 0 {
            ring.clear();
            return;
        }
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        for event in events {
            if !batch.is_empty() && batch_bytes + event.sse_frame.len() > BATCH_BYTES {
                ring.push(
                    Arc::new(Batch::new(std::mem::take(&mut batch))),
                    self.inner.bounds,
                );
                batch_bytes = 0;
            }
            batch_bytes += event.sse_frame.len();
            batch.push(event);
        }
        if !batch.is_empty() {
            ring.push(Arc::new(Batch::new(batch)), self.inner.bounds);
        }
        let end = ring.end();
        drop(ring);
        self.inner.published.send_replace(end);
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
            events.append(&mut std::mem::take(&mut *lock(&self.inner.pending)).events);
            if !events.is_empty() {
                self.publish(events);
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

/// One subscriber's place in the ring.
#[derive(Debug)]
pub struct Subscription {
    inner: Arc<Inner>,
    published: watch::Receiver<u64>,
    /// The number of the next batch to read.
    next: u64,
}

/// Why a subscription gave no batch.
#[derive(Debug, PartialEq, Eq)]
pub struct Lagged {
    /// Batches the ring dropped before this subscriber read them.
    pub missed: u64,
}

impl Subscription {
    /// The next batch, waiting for one; `Err` when the ring dropped batches this
    /// subscriber had not read (it then goes on from the oldest kept).
    pub async fn recv(&mut self) -> Result<Arc<Batch>, Lagged> {
        loop {
            // Mark the end seen before reading the ring: a batch published after the read
            // wakes the wait below.
            self.published.borrow_and_update();
            {
                let ring = lock(&self.inner.ring);
                if self.next < ring.first {
                    let missed = ring.first - self.next;
                    self.next = ring.first;
                    return Err(Lagged { missed });
                }
                let offset = usize::try_from(self.next - ring.first).unwrap_or(usize::MAX);
                if let Some(batch) = ring.batches.get(offset) {
                    self.next += 1;
                    return Ok(Arc::clone(batch));
                }
            }
            if self.published.changed().await.is_err() {
                // The hub is gone with the process; nothing more will come.
                std::future::pending::<()>().await;
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
        /// Batches dropped from the ring before it read them.
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

impl From<OpenError> for crate::app::Error {
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
    subscription: Subscription,
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
        let subscription = hub.subscribe();
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
            subscription,
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
            let Ok(received) = tokio::time::timeout(idle, self.subscription.recv()).await else {
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
                Err(Lagged { missed }) => {
                    self.catching_up = true;
                    return Some(Delivery::Lagged {
                        missed,
                        resume_after: self.last_seq,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, blob_bytes: usize) -> Arc<StreamEvent> {
        let payload = serde_json::json!({ "blob": "x".repeat(blob_bytes) });
        Arc::new(StreamEvent::new(
            Some(seq),
            hatchery_core::EventKind::AgentCardUpdated.as_str(),
            Some("w"),
            &payload,
            0,
        ))
    }

    fn seqs(batch: &Batch) -> Vec<i64> {
        batch.events.iter().filter_map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn a_subscriber_that_never_reads_holds_the_ring_within_its_byte_budget() {
        const BUDGET: usize = 1 << 20;
        let hub = EventHub::new(
            0,
            EventBuffer {
                batches: 4096,
                bytes: BUDGET,
            },
        );
        let mut reader = hub.subscribe();
        let mut stalled = hub.subscribe();
        // 200 batches of one 60 KB event: twelve megabytes of frames, fifty times the
        // budget, far fewer batches than the count bound.
        for seq in 1..=200 {
            hub.publish(vec![event(seq, 60_000)]);
            assert!(hub.buffered_bytes() <= BUDGET, "{}", hub.buffered_bytes());
            // The subscriber that reads gets every batch, in order.
            let batch = reader.recv().await.expect("a reader keeping up never lags");
            assert_eq!(seqs(&batch), [seq]);
        }
        // The stalled one is told how much it missed, then reads what the ring kept, up
        // to the newest.
        let Err(Lagged { missed }) = stalled.recv().await else {
            panic!("the stalled subscriber should have lagged");
        };
        let kept = hub.inner.ring.lock().unwrap().batches.len() as u64;
        assert_eq!(missed + kept, 200);
        assert!(kept >= 1 && missed > 150, "missed {missed}, kept {kept}");
        let mut last = 0;
        for _ in 0..kept {
            last = seqs(&stalled.recv().await.unwrap())[0];
        }
        assert_eq!(last, 200);
    }

    #[tokio::test]
    async fn a_burst_goes_out_in_batches_of_bounded_size() {
        let hub = EventHub::new(0, EventBuffer::default());
        let mut reader = hub.subscribe();
        hub.publish((1..=20).map(|seq| event(seq, 60_000)).collect());
        let mut seen = Vec::new();
        while seen.len() < 20 {
            let batch = reader.recv().await.unwrap();
            assert!(
                batch.events.len() == 1 || batch.sse.len() <= BATCH_BYTES,
                "a batch of {} bytes",
                batch.sse.len()
            );
            seen.extend(seqs(&batch));
        }
        assert_eq!(seen, (1..=20).collect::<Vec<_>>());
        assert!(hub.inner.ring.lock().unwrap().batches.len() > 1);
    }

    #[tokio::test]
    async fn nothing_is_kept_without_subscribers_and_a_waiting_one_is_woken() {
        let hub = EventHub::new(0, EventBuffer::default());
        hub.publish(vec![event(1, 10)]);
        assert_eq!(hub.buffered_bytes(), 0);
        let mut waiting = hub.subscribe();
        let woken = tokio::spawn(async move { waiting.recv().await.map(|b| seqs(&b)) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        hub.publish(vec![event(2, 10)]);
        let received = tokio::time::timeout(Duration::from_secs(5), woken)
            .await
            .expect("woken by the publish")
            .unwrap();
        assert_eq!(received, Ok(vec![2]), "only what came after subscribing");
    }

    #[test]
    fn broadcast_only_events_wait_within_their_byte_limit() {
        let hub = EventHub::new(0, EventBuffer::default());
        let _subscriber = hub.subscribe();
        for _ in 0..100 {
            hub.broadcast(|| {
                StreamEvent::new(
                    None,
                    hatchery_core::EventKind::TaskUpdated.as_str(),
                    Some("w"),
                    &serde_json::json!({"t": "y".repeat(60_000)}),
                    0,
                )
            });
        }
        let pending = hub.inner.pending.lock().unwrap();
        assert!(pending.bytes <= PENDING_LIMIT_BYTES);
        assert!(pending.events.len() < 100 && !pending.events.is_empty());
    }
}
