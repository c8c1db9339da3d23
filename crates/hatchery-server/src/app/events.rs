//! The event log as the API reads it, and its retention: pages bounded by rows and bytes,
//! cursors checked against what retention deleted, and the pruning pass the sweeper runs.
//!
//! The cursor contract: a cursor `after` is answered with every event after it, page by
//! page, or with 410 `cursor_expired` when retention deleted some of them (the pruned
//! horizon, the highest seq deleted, is above the cursor). Retention deletes the oldest
//! events first, so a cursor at or above the horizon never lost anything.

use hatchery_store::{EventRow, Page};

use super::limits::PAGE_BUDGET_BYTES;
use super::{App, Cursor, Error, store_error};
use crate::supervision::micros;

/// Events deleted per statement of a retention pass.
const PRUNE_BATCH: i64 = 1000;
/// Statements per pass (one pass per sweep): a backlog is worked off over several sweeps,
/// never in one long transaction.
const PRUNE_BATCHES_PER_PASS: usize = 10;

/// The refusal of a cursor below the pruned horizon `pruned_through`.
#[must_use]
pub fn cursor_expired(pruned_through: i64) -> Error {
    Error::CursorExpired(Cursor::Events { pruned_through })
}

impl App {
    /// `GET /events`: without `after`, the newest `limit` events, newest first; with it,
    /// the events after that cursor, oldest first. Either way a page of at most `limit`
    /// rows and about [`PAGE_BUDGET_BYTES`] of payload. 410 when retention deleted events
    /// after the cursor.
    pub async fn event_list(
        &self,
        workspace_id: Option<&str>,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Page<EventRow>, Error> {
        let read = store_error("failed to list events");
        let Some(after) = after else {
            return self
                .store
                .event_list(workspace_id, limit, PAGE_BUDGET_BYTES)
                .await
                .map_err(read);
        };
        let page = self
            .store
            .event_list_after(after, workspace_id, limit, PAGE_BUDGET_BYTES)
            .await
            .map_err(&read)?;
        // Asked after the read: a deletion the read missed has moved the horizon by now.
        let pruned_through = self.store.event_pruned_through().await.map_err(read)?;
        if after < pruned_through {
            return Err(cursor_expired(pruned_through));
        }
        Ok(page)
    }

    /// Event retention: delete, oldest first, the events older than
    /// `Supervision::event_retention` or not among the `event_retention_count` newest, in
    /// bounded batches; how many went.
    pub async fn prune_events(&self) -> Result<u64, Error> {
        let before = self
            .store
            .now()
            .saturating_sub(micros(self.supervision.event_retention));
        let keep = self
            .supervision
            .event_retention_count
            .map(|count| i64::try_from(count).unwrap_or(i64::MAX));
        let mut deleted = 0;
        for _ in 0..PRUNE_BATCHES_PER_PASS {
            let batch = self
                .store
                .event_prune(before, keep, PRUNE_BATCH)
                .await
                .map_err(store_error("event retention failed"))?;
            deleted += batch;
            if batch < u64::try_from(PRUNE_BATCH).unwrap_or(u64::MAX) {
                break;
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "event retention: deleted the oldest events");
        }
        Ok(deleted)
    }
}
