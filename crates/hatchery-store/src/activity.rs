//! The activity log: what agents report doing (A2A calls, task updates, logs, errors).

use crate::page::{Budgeted, Page, budgeted, page};
use crate::{Store, StoreError};

/// What one activity row costs a page beyond its texts and bodies (ids, times, keys).
const ROW_OVERHEAD_BYTES: i64 = 256;

/// One activity row, as written and as read.
#[allow(missing_docs, reason = "fields mirror the columns in migrations/")]
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActivityRow {
    pub id: String,
    pub workspace_id: String,
    pub activity_type: String,
    pub source_id: Option<String>,
    pub target_id: Option<String>,
    pub method: Option<String>,
    pub summary: Option<String>,
    pub duration_ms: Option<i64>,
    pub status: String,
    pub error_detail: Option<String>,
    /// JSON text.
    pub request_body: Option<String>,
    /// JSON text.
    pub response_body: Option<String>,
    pub created_at: i64,
}

/// Which rows a listing keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityFilter {
    /// Exact `activity_type`.
    pub activity_type: Option<String>,
    /// `Some(false)`: rows without a source (the canvas); `Some(true)`: with one (agents).
    pub has_source: Option<bool>,
    /// At most this many, newest first.
    pub limit: i64,
    /// Only rows older than this one (by id): where the previous page ended.
    pub before: Option<String>,
    /// At most about this many bytes of texts and bodies (see [`Page`]).
    pub budget: i64,
}

impl Store {
    /// Append one activity row; `false` if the workspace does not exist or is removed.
    pub async fn activity_insert(&self, row: &ActivityRow) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO activity (id, workspace_id, activity_type, source_id, target_id, \
             method, summary, duration_ms, status, error_detail, request_body, response_body, \
             created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 \
             WHERE EXISTS (SELECT 1 FROM workspaces WHERE id = $2 AND status <> $14)",
        )
        .bind(&row.id)
        .bind(&row.workspace_id)
        .bind(&row.activity_type)
        .bind(&row.source_id)
        .bind(&row.target_id)
        .bind(&row.method)
        .bind(&row.summary)
        .bind(row.duration_ms)
        .bind(&row.status)
        .bind(&row.error_detail)
        .bind(&row.request_body)
        .bind(&row.response_body)
        .bind(row.created_at)
        .bind(hatchery_core::WorkspaceStatus::Removed.as_str())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// A workspace's activity, newest first (by time, then id), after `filter.before` when
    /// given; a page bounded by rows and bytes (see [`Page`]). A `before` row that is gone
    /// (retention deletes the oldest rows first) leaves nothing older to list.
    pub async fn activity_list(
        &self,
        workspace_id: &str,
        filter: &ActivityFilter,
    ) -> Result<Page<ActivityRow>, StoreError> {
        let source_clause = match filter.has_source {
            None => "",
            Some(true) => " AND source_id IS NOT NULL",
            Some(false) => " AND source_id IS NULL",
        };
        let before_clause = if filter.before.is_some() {
            " AND (created_at, id) < (SELECT created_at, id FROM activity \
             WHERE id = $5 AND workspace_id = $1)"
        } else {
            ""
        };
        let inner = format!(
            "SELECT id, workspace_id, activity_type, source_id, target_id, method, summary, \
             duration_ms, status, error_detail, request_body, response_body, created_at, \
             {ROW_OVERHEAD_BYTES} + COALESCE(octet_length(method), 0) \
             + COALESCE(octet_length(summary), 0) + COALESCE(octet_length(error_detail), 0) \
             + COALESCE(octet_length(request_body), 0) \
             + COALESCE(octet_length(response_body), 0) AS size \
             FROM activity WHERE workspace_id = $1 AND ($2 = '' OR activity_type = $2)\
             {source_clause}{before_clause} ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let sql = budgeted(&inner, "created_at DESC, id DESC", "$4");
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(workspace_id)
            .bind(filter.activity_type.clone().unwrap_or_default())
            .bind(filter.limit)
            .bind(filter.budget);
        if let Some(before) = &filter.before {
            query = query.bind(before);
        }
        let rows: Vec<Budgeted<ActivityRow>> = query.fetch_all(&self.reader).await?;
        Ok(page(rows, filter.limit, filter.budget))
    }

    /// Delete activity older than `before` (retention); returns how many rows went.
    pub async fn activity_prune(&self, before: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM activity WHERE created_at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?
            .rows_affected())
    }
}
