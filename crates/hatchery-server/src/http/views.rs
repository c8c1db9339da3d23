//! Wire shapes: the JSON clients see, field for field as the platform API has them.

use std::time::SystemTime;

use hatchery_store::{WorkspaceRow, micros_to_time};
use serde_json::{Map, Value, json};

/// RFC 3339 in UTC.
pub(crate) fn timestamp(micros: i64) -> String {
    humantime::format_rfc3339_micros(micros_to_time(micros)).to_string()
}

/// RFC 3339 in UTC, of a `SystemTime`.
pub(crate) fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A float printed as Go prints it: `100`, not `100.0`.
pub(crate) fn go_number(value: f64) -> Value {
    // Integral values within f64's exact integer range print without a fraction.
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "checked integral and in range"
        )]
        return json!(value as i64);
    }
    json!(value)
}

/// Parse a stored JSON column; a damaged one shows as null rather than failing the list.
fn stored_json(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

fn common(row: &WorkspaceRow) -> Map<String, Value> {
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_owned(), value);
    };
    put("id", json!(row.id));
    put("name", json!(row.name));
    put("role", json!(row.role));
    put("tier", json!(row.tier));
    put("status", json!(row.status));
    put("url", json!(row.url));
    put("parent_id", json!(row.parent_id));
    put("agent_card", stored_json(row.agent_card.as_deref()));
    put("active_tasks", json!(row.active_tasks));
    put("max_concurrent_tasks", json!(row.max_concurrent_tasks));
    put("last_error_rate", go_number(row.last_error_rate));
    put("uptime_seconds", json!(row.uptime_seconds));
    put("runtime", json!(row.runtime));
    put("x", go_number(row.x));
    put("y", go_number(row.y));
    put("collapsed", json!(row.collapsed != 0));
    // hatchery's additions: what was decided about the provider, and by which registry.
    put("model", json!(row.model));
    put("provider", json!(row.provider));
    put("provider_source", json!(row.provider_source));
    put("llm_billing_mode", json!(row.llm_billing_mode));
    put("registry_hash", json!(row.registry_hash));
    put("workspace_access", json!(row.workspace_access));
    put("failure_reason", json!(row.failure_reason));
    put("last_seen_at", json!(row.last_seen_at.map(timestamp)));
    put("created_at", json!(timestamp(row.created_at)));
    out
}

/// An element of `GET /workspaces`.
pub(crate) fn workspace_full(row: &WorkspaceRow) -> Value {
    let mut out = common(row);
    out.insert("last_sample_error".into(), json!(row.last_sample_error));
    out.insert("current_task".into(), json!(row.current_task));
    out.insert("workspace_dir".into(), json!(row.workspace_dir));
    out.insert("budget_limit".into(), json!(row.budget_limit));
    out.insert("monthly_spend".into(), json!(row.monthly_spend));
    Value::Object(out)
}

/// `GET /workspaces/:id`.
pub(crate) fn workspace_single(row: &WorkspaceRow) -> Value {
    let mut out = common(row);
    out.insert(
        "last_outbound_at".into(),
        json!(row.last_outbound_at.map(timestamp)),
    );
    Value::Object(out)
}
