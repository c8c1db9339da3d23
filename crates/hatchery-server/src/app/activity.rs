//! The activity log: what an agent reports it did. One row per report, for the reporting
//! workspace; a broadcast-only `ACTIVITY_LOGGED` for live subscribers.

use hatchery_store::{ActivityFilter, ActivityRow, Page};
use serde::Deserialize;
use serde_json::{Value, json};

use super::agents::invalid_field;
use super::limits::{MAX_ACTIVITY_BODY_BYTES, PAGE_BUDGET_BYTES, check_size};
use super::workspaces::parse_workspace_id;
use super::{App, Error, store_error};
use crate::event_hub::StreamEvent;

/// The activity types an agent may report.
pub const ACTIVITY_TYPES: &[&str] = &[
    "a2a_send",
    "a2a_receive",
    "task_update",
    "agent_log",
    "skill_promotion",
    "memory_write",
    "error",
];
/// Listing: the default and the most rows.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;
/// The longest free-text field kept, in bytes.
const MAX_TEXT: usize = 64 * 1024;

/// `POST /workspaces/:id/activity`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ReportActivity {
    /// One of `a2a_send`, `a2a_receive`, `task_update`, `agent_log`, `skill_promotion`,
    /// `memory_write`, `error`.
    #[schema(required, value_type = String)]
    pub activity_type: Option<String>,
    /// The A2A method or tool, if any.
    pub method: Option<String>,
    /// One line for people.
    pub summary: Option<String>,
    /// The workspace called, if any.
    pub target_id: Option<String>,
    /// The reporting workspace; empty means `:id`, anything else is refused.
    pub source_id: Option<String>,
    /// `ok` (default), `error`, `timeout`, …
    pub status: Option<String>,
    /// What went wrong.
    pub error_detail: Option<String>,
    /// How long it took.
    pub duration_ms: Option<i64>,
    /// Any JSON.
    pub request_body: Option<Value>,
    /// Any JSON.
    pub response_body: Option<Value>,
    /// Stands in for a missing `request_body`.
    pub metadata: Option<Value>,
}

/// Query of `GET /workspaces/:id/activity`, as given.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Exact activity type.
    #[serde(rename = "type")]
    pub activity_type: Option<String>,
    /// `canvas` (no source) or `agent` (has one).
    pub source: Option<String>,
    /// 1–500; anything else means 100.
    pub limit: Option<String>,
    /// Only rows older than this one (an activity id): the last row of the previous page.
    #[param(format = Uuid)]
    pub before: Option<String>,
}

/// A body as stored: its JSON text, null for none; over [`MAX_ACTIVITY_BODY_BYTES`] a 413
/// naming `field`.
fn stored_body(field: &'static str, body: Option<Value>) -> Result<Option<String>, Error> {
    let Some(text) = body.filter(|v| !v.is_null()).map(|v| v.to_string()) else {
        return Ok(None);
    };
    check_size(field, text.len(), MAX_ACTIVITY_BODY_BYTES)?;
    Ok(Some(text))
}

/// Empty strings are stored as null.
fn non_empty(text: Option<String>, field: &'static str) -> Result<Option<String>, Error> {
    let text = text.filter(|t| !t.is_empty());
    if text.as_ref().is_some_and(|t| t.len() > MAX_TEXT) {
        return Err(invalid_field(
            field,
            format!("{field} must be at most {MAX_TEXT} bytes"),
        ));
    }
    Ok(text)
}

impl App {
    /// Log one activity row for workspace `id`.
    pub async fn activity_report(&self, id: &str, body: ReportActivity) -> Result<(), Error> {
        let activity_type = body
            .activity_type
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                invalid_field("activity_type", "activity_type is required".to_owned())
            })?;
        if !ACTIVITY_TYPES.contains(&activity_type.as_str()) {
            return Err(Error::invalid_field(
                "invalid_activity_type",
                "activity_type",
                format!(
                    "invalid activity_type, must be one of: {}",
                    ACTIVITY_TYPES.join(", ")
                ),
            ));
        }
        match body.source_id.as_deref() {
            None | Some("") => {}
            Some(source) if source == id => {}
            Some(_) => {
                return Err(Error::Refused {
                    code: "source_mismatch",
                    message: "source_id must match authenticated workspace".to_owned(),
                });
            }
        }
        let target_id =
            match body.target_id.as_deref() {
                None | Some("") => None,
                Some(target) => Some(parse_workspace_id(target).map_err(|_| {
                    invalid_field("target_id", "target_id must be a workspace UUID")
                })?),
            };
        if body.duration_ms.is_some_and(|d| d < 0) {
            return Err(invalid_field(
                "duration_ms",
                "duration_ms must not be negative",
            ));
        }
        let (request_field, request_body) = match body.request_body.filter(|v| !v.is_null()) {
            Some(request) => ("request_body", Some(request)),
            None => ("metadata", body.metadata.filter(|v| !v.is_null())),
        };
        let request_body = stored_body(request_field, request_body)?;
        let response_body = stored_body("response_body", body.response_body)?;
        let row = ActivityRow {
            id: uuid::Uuid::new_v4().hyphenated().to_string(),
            workspace_id: id.to_owned(),
            activity_type,
            source_id: Some(id.to_owned()),
            target_id,
            method: non_empty(body.method, "method")?,
            summary: non_empty(body.summary, "summary")?,
            duration_ms: body.duration_ms,
            status: non_empty(body.status, "status")?.unwrap_or_else(|| "ok".to_owned()),
            error_detail: non_empty(body.error_detail, "error_detail")?,
            request_body,
            response_body,
            created_at: self.store.now(),
        };
        if !self.activity_record(&row).await? {
            // Gone between the gate and the write.
            return Err(Error::workspace_not_found(id));
        }
        Ok(())
    }

    /// Append `row` to its workspace's activity and tell live subscribers
    /// (`ACTIVITY_LOGGED`); `false` if the workspace is gone.
    pub(crate) async fn activity_record(&self, row: &ActivityRow) -> Result<bool, Error> {
        let stored = self
            .store
            .activity_insert(row)
            .await
            .map_err(store_error("failed to log activity"))?;
        if !stored {
            return Ok(false);
        }
        self.hub.broadcast(|| {
            StreamEvent::new(
                None,
                hatchery_core::EventKind::ActivityLogged.as_str(),
                Some(&row.workspace_id),
                &json!({
                    "activity_type": row.activity_type,
                    "method": row.method,
                    "summary": row.summary,
                    "status": row.status,
                    "source_id": row.source_id,
                    "target_id": row.target_id,
                    "duration_ms": row.duration_ms,
                }),
                row.created_at,
            )
        });
        Ok(true)
    }

    /// A workspace's activity, newest first: at most `limit` rows and about
    /// [`PAGE_BUDGET_BYTES`] of texts and bodies; `before` continues after the last row of
    /// a previous page.
    pub async fn activity_list(
        &self,
        id: &str,
        query: ActivityQuery,
    ) -> Result<Page<ActivityRow>, Error> {
        let has_source = match query.source.as_deref() {
            None | Some("") => None,
            Some("canvas") => Some(false),
            Some("agent") => Some(true),
            Some(_) => {
                return Err(Error::invalid_field(
                    "invalid_source",
                    "source",
                    "source must be 'canvas' or 'agent'".to_owned(),
                ));
            }
        };
        let limit = query
            .limit
            .and_then(|l| l.parse::<i64>().ok())
            .filter(|l| *l > 0)
            .map_or(DEFAULT_LIMIT, |l| l.min(MAX_LIMIT));
        let before = match query.before.as_deref() {
            None => None,
            Some(before) => Some(parse_workspace_id(before).map_err(|_| {
                Error::invalid(
                    "invalid cursor",
                    "invalid_cursor",
                    Some("before"),
                    "before must be an activity id (a UUID) from a previous page",
                )
            })?),
        };
        self.workspace_exists(id).await?;
        self.store
            .activity_list(
                id,
                &ActivityFilter {
                    activity_type: query.activity_type.filter(|t| !t.is_empty()),
                    has_source,
                    limit,
                    before,
                    budget: PAGE_BUDGET_BYTES,
                },
            )
            .await
            .map_err(store_error("failed to list activity"))
    }
}

impl App {
    /// Delete activity older than the retention; how many rows went.
    pub async fn prune_activity(&self) -> Result<u64, Error> {
        let before = self.store.now().saturating_sub(crate::supervision::micros(
            self.supervision.activity_retention,
        ));
        self.store
            .activity_prune(before)
            .await
            .map_err(store_error("activity retention failed"))
    }
}
