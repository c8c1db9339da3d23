//! `/admin/registry`: what the live registry derives, in its own words.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /admin/registry/explain`: what the live registry derives for a runtime and model,
/// in the registry's own words, with the trace of every rule tried.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExplainAnswer {
    /// The runtime asked about.
    pub runtime: String,
    /// The model asked about.
    pub model: String,
    /// `derived`, `passthrough` or `error`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(derived|passthrough|error)$"))]
    pub outcome: String,
    /// The provider decided on.
    pub provider: Option<String>,
    /// `platform` or `byok`.
    pub billing: Option<String>,
    /// Which rule decided (`exact_model`, `prefix_match`, …).
    pub via: Option<String>,
    /// For a pass-through: why the registry has no say (`unknown_runtime`, `empty_model`,
    /// `no_match`).
    pub reason: Option<String>,
    /// For an error: its kind (`ambiguous`, …).
    pub kind: Option<String>,
    /// For an ambiguous model: every provider that matches.
    pub candidates: Option<Vec<String>>,
    /// For an error: what went wrong, naming runtime and model.
    pub message: Option<String>,
    /// The registry snapshot that decided.
    pub registry_hash: String,
    /// The rules tried, in order.
    pub explain: Vec<ExplainStep>,
}

/// One rule the registry tried: its name, and the registry's own details of it (they
/// differ by step: `runtime_found` has `native_providers`, `prefix_tried` has `pattern`
/// and `matched`, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExplainStep {
    /// The rule, in snake case (`runtime_found`, `exact_ids`, `prefix_tried`, …).
    pub step: String,
    /// The step's own fields.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Map<String, Value>,
}
